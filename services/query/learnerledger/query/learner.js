// The learner's page: sign in with an ID token (kept in sessionStorage), then show the
// record from /api/learner/record and change consents. Plain DOM; data goes in via
// textContent only.
"use strict";

(function () {
  const KEY = "learnerledger.token";
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function day(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  }

  function when(iso) {
    return new Date(iso).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" }) + " UTC";
  }

  function say(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = "message" + (kind === "info" ? " info" : "");
    box.setAttribute("role", kind === "info" ? "status" : "alert");
    box.hidden = !text;
  }

  async function call(method, path, body) {
    const token = sessionStorage.getItem(KEY);
    const response = await fetch(path, {
      method,
      headers: Object.assign({ Authorization: "Bearer " + token },
        body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
      cache: "no-store",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = data.error || {};
      const err = new Error(error.message || "the server answered " + response.status);
      err.status = response.status;
      throw err;
    }
    return data;
  }

  function fillRows(tbody, rows) {
    tbody.replaceChildren(...rows.map((cells) => el("tr", {}, cells.map((c) => el("td", { text: String(c) })))));
  }

  function renderTotals(t) {
    const pairs = [
      ["Active credits", t.active_credits], ["Expired", t.expired_credits], ["Revoked", t.revoked_credits],
      ["Redeemed", t.redeemed_credits], ["All credits earned", t.total_credits],
    ];
    $("totals").replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
    fillRows($("by-level").tBodies[0], t.by_level.map((r) => ["Level " + r.level, r.credits]));
    fillRows($("by-issuer").tBodies[0], t.by_issuer.map((r) => [r.issuer_id, r.credits]));
  }

  function renderCredit(c, soonDays) {
    const status = c.expiring_soon ? "expiring soon" : c.status;
    const pillClass = c.expiring_soon ? "expiring" : c.status;
    const info = el("div", {}, [
      el("h3", { text: c.course_id }),
      el("p", { class: "meta", text: c.issuer_id + " · level " + c.level + " · " + c.credits + " credits" }),
      el("p", { class: "meta" }, [
        "Completed " + day(c.completed_at) + " · valid until " + day(c.valid_until) + " · ",
        el("span", { class: "pill " + pillClass, text: status }),
      ]),
    ]);
    if (c.expiring_soon) {
      info.append(el("p", { class: "soon", text: "Expires within " + soonDays + " days: redeem it before " + day(c.valid_until) + "." }));
    }
    const item = el("li", { class: "credit" + (c.expiring_soon ? " expiring" : ""), "data-course": c.course_id, "data-status": c.status }, [info]);
    if (c.share_url) {
      const id = "share-" + c.sequence;
      const input = el("input", { id, type: "text", readonly: "", value: c.share_url });
      const copy = el("button", { type: "button", class: "secondary", text: "Copy link" });
      copy.addEventListener("click", async () => {
        input.select();
        try { await navigator.clipboard.writeText(c.share_url); say("Link copied.", "info"); }
        catch (e) { say("Select the link and copy it yourself.", "info"); }
      });
      item.append(el("div", { class: "share" }, [
        el("img", { src: c.qr_url, alt: "QR code of the share link for " + c.course_id, width: "132", height: "132" }),
        el("label", { for: id, text: "Share link" }), input,
        el("div", { class: "row" }, [copy, el("a", { href: c.share_url, text: "Open verification page" })]),
      ]));
    }
    return item;
  }

  function renderConsents(consents) {
    const list = $("consents");
    if (!consents.length) {
      list.replaceChildren(el("li", { text: "No university or employer may read your record." }));
      return;
    }
    list.replaceChildren(...consents.map((c) => {
      const revoke = el("button", { type: "button", class: "danger", text: "Revoke", "aria-label": "Revoke access of " + c.university_id });
      revoke.addEventListener("click", () => change("/api/learner/consents/revoke", { university_id: c.university_id },
        (r) => !r.consents.some((x) => x.university_id === c.university_id), "Access of " + c.university_id + " revoked."));
      const terms = (c.purpose ? "for " + c.purpose : "no purpose given") + " · " +
        (c.expire_time ? "until " + day(c.expire_time) : "until you revoke it") + (c.basis === "mandate" ? " · under a mandate" : "");
      return el("li", { class: "consent", "data-reader": c.university_id }, [
        el("div", {}, [el("strong", { text: c.university_id }), el("br"), el("span", { class: "meta", text: terms })]), revoke,
      ]);
    }));
  }

  function renderAccesses(accesses) {
    fillRows($("accesses").tBodies[0], accesses.map((a) => [when(a.access_time), a.reader_id + " (" + a.reader_kind + ")", a.method]));
    $("no-accesses").hidden = accesses.length > 0;
  }

  function render(record) {
    $("who").textContent = record.learner_id_masked;
    renderTotals(record.transcript);
    const credits = record.transcript.credentials;
    $("credits").replaceChildren(...(credits.length ? credits.map((c) => renderCredit(c, record.expiring_soon_days))
      : [el("li", { text: "No credits yet." })]));
    renderConsents(record.consents);
    renderAccesses(record.accesses);
    $("signin").hidden = true;
    $("record").hidden = false;
  }

  async function load() {
    try {
      const record = await call("GET", "/api/learner/record");
      render(record);
      return record;
    } catch (e) {
      if (e.status === 401) {
        sessionStorage.removeItem(KEY);
        $("record").hidden = true;
        $("signin").hidden = false;
        say("Sign-in failed: " + e.message);
      } else {
        say("Could not load your record: " + e.message);
      }
      return null;
    }
  }

  // A consent change is an entry the ledger appends shortly after: re-read until it shows.
  async function change(path, body, done, message) {
    say("Saving…", "info");
    try {
      await call("POST", path, Object.assign({ request_id: crypto.randomUUID ? crypto.randomUUID() : undefined }, body));
    } catch (e) {
      say("Not saved: " + e.message);
      return;
    }
    for (let attempt = 0; attempt < 40; attempt++) {
      const record = await load();
      if (record && done(record)) { say(message, "info"); return; }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    say("Saved; the ledger has not shown it yet. Reload in a moment.", "info");
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(KEY, token);
      $("token").value = "";
      say("");
      load();
    });
    $("signout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      $("record").hidden = true;
      $("signin").hidden = false;
      say("Signed out.", "info");
      $("token").focus();
    });
    $("grant-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      const reader = form.university_id.value.trim();
      const body = { university_id: reader, purpose: form.purpose.value.trim(), expire_time: form.expire_time.value };
      change("/api/learner/consents", body, (r) => r.consents.some((c) => c.university_id === reader && c.purpose === body.purpose),
        "Access given to " + reader + ".").then(() => form.reset());
    });
    if (sessionStorage.getItem(KEY)) load();
  });
})();
