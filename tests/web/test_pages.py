"""Both web pages in a real browser (Debian's chromium, headless, phone-sized) on the real stack:
the learner signs in with a token from the development provider, sees the transcript (totals by
level and issuer, the credit that expires soon highlighted, the revoked one), share links with
QR codes, grants and revokes a consent, sees who read the record, and follows a share link to
the verification page; a verifier opens links and uploads files: active, revoked, not found,
a tampered file and a file signed by another key each get their own verdict. Screenshots go to
the test's tmp directory (and one of each page to docs/screenshots/ for the README)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from learnerledger.domain.proofs import BUNDLE_FORMAT
from learnerledger.domain.signed_note import NoteSigner, parse_note
from learnerledger.domain.tlog_checkpoint import parse_checkpoint_body, sign_checkpoint
from tests.web.conftest import ORIGIN, SCREENSHOTS, WebStack

pytestmark = [pytest.mark.integration, pytest.mark.web]
WAIT_S = 20


def shot(driver: webdriver.Chrome, folder: Path, name: str, *, readme: bool = False) -> Path:
    """A screenshot of the whole page (the window grown to the page's height)."""
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(915, int(height) + 120))
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path))
    driver.set_window_size(width, 915)
    if readme:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")
    return path


def wait(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, WAIT_S)


def verdict_of(driver: webdriver.Chrome) -> WebElement:
    return wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-verdict]")))


def assert_labelled(driver: webdriver.Chrome) -> None:
    """Every visible form control has a label (accessibility)."""
    unlabelled = driver.execute_script(
        """return [...document.querySelectorAll('input, textarea, select')]
             .filter(e => e.offsetParent !== null && e.type !== 'hidden')
             .filter(e => !(e.id && document.querySelector(`label[for="${e.id}"]`))
                          && !e.getAttribute('aria-label'))
             .map(e => e.outerHTML)"""
    )
    assert unlabelled == []


async def bundle_of(stack: WebStack, course: str) -> dict[str, object]:
    """A proof bundle file assembled from the public endpoints only."""
    entry_hash = stack.hashes[course]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{stack.base}/entry?entry_hash={entry_hash}") as response:
            assert response.status == 200
            entry = (await response.json())["entry"]
        async with session.get(f"{stack.base}/proof/inclusion?entry_hash={entry_hash}") as response:
            assert response.status == 200
            inclusion = await response.json()
    return {
        "format": BUNDLE_FORMAT,
        "entry": entry,
        "leaf_index": inclusion["leaf_index"],
        "inclusion_proof": inclusion["inclusion_proof"],
        "checkpoint": inclusion["checkpoint"],
    }


def learner_page(driver: webdriver.Chrome, stack: WebStack, out: Path) -> str:
    driver.get(f"{stack.base}/learner")
    assert_labelled(driver)
    # keyboard only: the skip link comes first, then the token box and the button
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Skip to content"
    token_box = driver.find_element(By.ID, "token")
    token_box.send_keys(stack.token)
    token_box.send_keys(Keys.TAB)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait(driver).until(ec.visibility_of_element_located((By.ID, "record")))
    assert driver.find_element(By.ID, "who").text == "•••• •••• 4444"
    assert driver.execute_script("return sessionStorage.getItem('learnerledger.token')") == (
        stack.token
    )

    credits = {
        c.get_attribute("data-course"): c
        for c in driver.find_elements(By.CSS_SELECTOR, "li.credit")
    }
    assert set(credits) == {"ml-101", "os-301", "web-revoked"}
    assert "expiring" in (credits["os-301"].get_attribute("class") or "")
    assert "expiring soon" in credits["os-301"].text
    assert "expiring" not in (credits["ml-101"].get_attribute("class") or "")
    assert credits["web-revoked"].get_attribute("data-status") == "revoked"
    totals = driver.find_element(By.ID, "totals").text
    assert "Active credits\n7" in totals  # ml-101 (3) + os-301 (4)
    assert "Revoked\n3" in totals
    levels = driver.find_element(By.ID, "by-level").text
    assert "Level 5.5 3" in levels
    assert "Level 7 4" in levels
    issuers = driver.find_element(By.ID, "by-issuer").text
    assert "nptel 4" in issuers
    assert "swayam 3" in issuers
    share = credits["ml-101"].find_element(By.CSS_SELECTOR, ".share input")
    share_url = share.get_attribute("value") or ""
    assert share_url == f"{stack.base}/verify?entry={stack.hashes['ml-101']}"
    qr = credits["ml-101"].find_element(By.TAG_NAME, "img")
    assert (
        driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", qr) > 0
    )
    # who read my record: the university's read
    reads = driver.find_element(By.ID, "accesses").text
    assert "du (university)" in reads
    assert "GetTranscript" in reads
    consents = driver.find_element(By.ID, "consents")
    assert consents.find_element(By.CSS_SELECTOR, "[data-reader=du]")

    # grant a consent with a purpose and an expiry; it appears once the ledger appended it
    driver.find_element(By.ID, "reader").send_keys("acme-hr")
    driver.find_element(By.ID, "purpose").send_keys("job application")
    until = (datetime.now(UTC) + timedelta(days=30)).date()
    driver.execute_script(
        "arguments[0].value = arguments[1]", driver.find_element(By.ID, "expiry"), until.isoformat()
    )
    driver.find_element(By.CSS_SELECTOR, "#grant-form button").click()
    granted = wait(driver).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#consents [data-reader=acme-hr]"))
    )
    assert "for job application" in granted.text
    assert f"until {until.day} {until.strftime('%b')} {until.year}" in granted.text
    shot(driver, out, "learner-page", readme=True)
    # revoke it
    granted.find_element(By.TAG_NAME, "button").click()
    wait(driver).until(
        ec.invisibility_of_element_located((By.CSS_SELECTOR, "#consents [data-reader=acme-hr]"))
    )
    assert driver.find_elements(By.CSS_SELECTOR, "#consents [data-reader=du]")
    return share_url


def verify_pages(
    driver: webdriver.Chrome, stack: WebStack, share_url: str, files: dict[str, Path], out: Path
) -> None:
    # the learner's share link
    driver.get(share_url)
    verdict = verdict_of(driver)
    assert verdict.get_attribute("data-verdict") == "active"
    assert "Genuine and active" in verdict.text
    assert "Included in the latest signed checkpoint" in verdict.text
    facts = verdict.find_element(By.CSS_SELECTOR, "dl.facts").text
    for fact in ("•••• •••• 4444", "ml-101", "swayam", "5.5", "90 notional hours, NCRF", "active"):
        assert fact in facts
    assert "644444444444" not in driver.page_source
    assert_labelled(driver)
    shot(driver, out, "verify-active", readme=True)

    driver.get(f"{stack.base}/verify?entry={stack.hashes['web-revoked']}")
    verdict = verdict_of(driver)
    assert verdict.get_attribute("data-verdict") == "revoked"
    assert "Revoked by its issuer" in verdict.text
    assert "withdrew it" in verdict.text
    shot(driver, out, "verify-revoked")

    driver.get(f"{stack.base}/verify?entry={'ab' * 32}")
    assert verdict_of(driver).get_attribute("data-verdict") == "not_found"

    for name, expected, words in (
        ("tampered", "tampered", "Altered: do not trust this"),
        ("unknown-key", "unknown_key", "Signed by an unknown key"),
        ("genuine", "active", "Genuine and active"),
    ):
        driver.get(f"{stack.base}/verify")
        driver.find_element(By.ID, "file").send_keys(str(files[name]))
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        verdict = verdict_of(driver)
        assert verdict.get_attribute("data-verdict") == expected, verdict.text
        assert words in verdict.text
        assert f"the file {files[name].name}" in verdict.text
        shot(driver, out, f"verify-{name}", readme=name == "tampered")

    # a pasted link works like an opened one
    driver.get(f"{stack.base}/verify")
    driver.find_element(By.ID, "document").send_keys(share_url)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    assert verdict_of(driver).get_attribute("data-verdict") == "active"


async def test_learner_page_and_verification_page_in_a_browser(
    web_stack: WebStack, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    out = tmp_path / "screenshots"
    out.mkdir()
    genuine = await bundle_of(web_stack, "ml-101")
    tampered = json.loads(json.dumps(genuine))
    tampered["entry"]["canonical_json"] = tampered["entry"]["canonical_json"].replace(
        '"credits":3', '"credits":30', 1
    )
    assert tampered != genuine
    # the same tree signed by another key under the log's own name
    note = parse_note(str(genuine["checkpoint"]))
    impostor = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    foreign = {**genuine, "checkpoint": sign_checkpoint(parse_checkpoint_body(note.text), impostor)}
    files = {}
    for name, document in (("genuine", genuine), ("tampered", tampered), ("unknown-key", foreign)):
        files[name] = tmp_path / f"{name}.proof.json"
        files[name].write_text(json.dumps(document, indent=2))
    assert base64.b64decode(str(genuine["inclusion_proof"][0]))  # type: ignore[index]

    # the JSON endpoints refuse what they must, with reasons
    async with aiohttp.ClientSession() as session:
        for path, status, reason in (
            ("/entry?entry_hash=xyz", 400, "INVALID_ARGUMENT"),
            (f"/entry?entry_hash={'cd' * 32}", 404, "ENTRY_NOT_FOUND"),
            ("/qr.svg?entry=1", 400, "INVALID_ARGUMENT"),
            ("/api/learner/record", 401, "UNAUTHENTICATED"),
        ):
            async with session.get(f"{web_stack.base}{path}") as response:
                assert response.status == status, path
                assert (await response.json())["error"]["reason"] == reason
        forged = web_stack.token[:-4] + ("AAAA" if not web_stack.token.endswith("AAAA") else "BBBB")
        async with session.get(
            f"{web_stack.base}/api/learner/record", headers={"Authorization": f"Bearer {forged}"}
        ) as response:
            assert response.status == 401
        async with session.post(
            f"{web_stack.base}/api/learner/consents",
            json={"university_id": "", "purpose": "x"},
            headers={"Authorization": f"Bearer {web_stack.token}"},
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["field_violations"][0]["field"] == (
                "university_id"
            )

    def click_through() -> None:
        share_url = learner_page(browser, web_stack, out)
        verify_pages(browser, web_stack, share_url, files, out)

    # selenium blocks: drive the browser off the event loop that runs the services
    await asyncio.to_thread(click_through)
    assert sorted(p.name for p in out.iterdir()) == [
        "learner-page.png",
        "verify-active.png",
        "verify-genuine.png",
        "verify-revoked.png",
        "verify-tampered.png",
        "verify-unknown-key.png",
    ]
