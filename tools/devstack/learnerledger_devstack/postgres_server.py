"""The local PostgreSQL server: our own cluster under the state directory, never the system one.

Layout::

    <state>/postgres.pid           pid of the postmaster (copied from data/postmaster.pid)
    <state>/postgres/data/         the cluster (initdb); learnerledger.conf is rewritten each start
    <state>/postgres/run/          unix socket directory (mode 0700: only the owner connects)
    <state>/postgres/postgres.log  server log

Authentication: TCP on 127.0.0.1 uses scram-sha-256 with one login per purpose (the migration
login ``ll_migrator`` and one per service, see :mod:`learnerledger_devstack.db_logins`), each with a
generated password kept in ``<state>/postgres/logins.json`` (mode 0600). Database
``learnerledger`` is owned by the NOLOGIN role ``ll_owner``. The unix socket trusts
local users, and the socket directory is private to the cluster's OS user, which gives the
superuser ``postgres`` to this machine's owner (admin DSN) and to nobody else.

``initdb`` refuses to run as root, so as root every server command runs as the ``postgres`` OS
user through ``runuser`` and the cluster directory is chowned to it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from learnerledger_devstack import db_logins, processes
from learnerledger_devstack.settings import load_settings
from learnerledger_devstack.stack_errors import (
    ComponentFailedToStart,
    ComponentUnreachable,
    PostgresAuthFailed,
    PostgresNotInstalled,
    StackError,
    StateDirUnusable,
)

#: The login that owned everything before the least-privilege logins existed;
#: an old state dir's objects are handed over.
LEGACY_APP_ROLE = "learnerledger"
APP_DATABASE = "learnerledger"
SUPERUSER = "postgres"
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, including the NUL


def find_bin_dir() -> Path:
    """Directory holding ``initdb`` and ``pg_ctl``; raises :class:`PostgresNotInstalled`."""
    searched: list[str] = []
    override = load_settings().postgres_bin_dir
    candidates: list[Path] = []
    if override:
        candidates.append(override)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version_key(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)

    for pattern in (
        "/usr/lib/postgresql/*/bin",
        "/usr/pgsql-*/bin",
        "/usr/local/pgsql/bin",
        "/opt/homebrew/opt/postgresql*/bin",
        "/usr/local/opt/postgresql*/bin",
    ):
        candidates += [Path(p) for p in sorted(glob.glob(pattern), key=version_key, reverse=True)]
    for candidate in candidates:
        searched.append(str(candidate))
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise PostgresNotInstalled(", ".join(searched) or "PATH and /usr/lib/postgresql/*/bin")


def server_major_version(bin_dir: Path) -> str:
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return match.group(1) if match else "?"


def mask_password(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable DSN>"
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def with_database(dsn: str, database: str) -> str:
    """The same DSN pointing at another database (keeps user, host, query such as ``host=``)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database)))


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    state_dir: Path
    port: int

    @property
    def home(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "postgres.pid"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def logins_file(self) -> Path:
        return self.home / "logins.json"

    def login_urls(self) -> dict[str, str]:
        """DSN over TCP by purpose: ``migrator``, ``gateway``, ``ledger``, ``projector``,
        ``query``, ``admin`` (passwords generated on first use)."""
        passwords = db_logins.load_or_create_passwords(self.logins_file)
        return db_logins.login_dsns(f"postgresql://127.0.0.1:{self.port}/{APP_DATABASE}", passwords)

    @property
    def database_url(self) -> str:
        """The migration login (``ll_migrator``): migrations, and setting up demo or test data."""
        return self.login_urls()["migrator"]

    @property
    def admin_database_url(self) -> str:
        """Superuser over the private unix socket (trust), database ``learnerledger``."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{APP_DATABASE}?host={host}&port={self.port}"

    def running_pid(self) -> int | None:
        """The postmaster's pid if this cluster is running (marker: its ``-D`` data dir)."""
        pid = processes.owned_pid(self.pid_file, str(self.data_dir))
        if pid is None:
            pid = processes.owned_pid(self.data_dir / "postmaster.pid", str(self.data_dir))
            if pid is not None:
                processes.write_pid(self.pid_file, pid)
        return pid

    def config_matches(self) -> bool:
        """True if the running cluster was started with this port."""
        try:
            text = (self.data_dir / "learnerledger.conf").read_text()
        except OSError:
            return False
        return f"port = {self.port}\n" in text

    def log_tail(self, lines: int = 30) -> str:
        return processes.tail(self.log_file, lines)

    # -- running as the cluster's OS user -------------------------------------------------

    @staticmethod
    def _as_root() -> bool:
        return os.geteuid() == 0

    def _owner_cmd(self, cmd: list[str]) -> list[str]:
        if not self._as_root():
            return cmd
        runuser = shutil.which("runuser")
        if runuser is None:
            raise StackError(
                "running as root needs `runuser` (util-linux) to run PostgreSQL as the "
                "postgres OS user; install util-linux or run ledgerctl as a normal user"
            )
        return [runuser, "-u", SUPERUSER, "--", *cmd]

    def _owner_ids(self) -> tuple[int, int] | None:
        if not self._as_root():
            return None
        try:
            entry = pwd.getpwnam(SUPERUSER)
        except KeyError as exc:
            raise PostgresNotInstalled("no `postgres` OS user exists") from exc
        return entry.pw_uid, entry.pw_gid

    def _chown_to_owner(self, *paths: Path) -> None:
        """As root: hand our directories to the postgres OS user (initdb makes the rest)."""
        ids = self._owner_ids()
        if ids is None:
            return
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.chown(path, *ids, follow_symlinks=False)

    def _run(self, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._owner_cmd(cmd),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=self.home,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def prepare(self, bin_dir: Path) -> None:
        """Create directories, initdb on first use, (re)write our settings file."""
        sock = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(sock)) > _SOCKET_PATH_MAX:
            raise StateDirUnusable(
                f"the PostgreSQL socket path {sock} is longer than {_SOCKET_PATH_MAX} "
                "characters; set LEDGER_STATE_DIR to a shorter directory"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.socket_dir.chmod(0o700)
        self._chown_to_owner(self.home, self.socket_dir, self.log_file)
        if self._as_root():
            probe = self._run(["test", "-w", str(self.home)], timeout=30)
            if probe.returncode != 0:
                raise StateDirUnusable(
                    f"the postgres OS user cannot write {self.home}: a parent directory of "
                    f"LEDGER_STATE_DIR={self.state_dir} is not searchable by other users "
                    "(chmod o+x it) or set LEDGER_STATE_DIR to a directory such as /tmp/ledger"
                )
        if not (self.data_dir / "PG_VERSION").exists():
            if self.data_dir.exists() and any(self.data_dir.iterdir()):
                raise StateDirUnusable(
                    f"{self.data_dir} exists but is not a PostgreSQL cluster; delete it "
                    "(it will be re-created) or set LEDGER_STATE_DIR elsewhere"
                )
            done = self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-instructions",
                ],
                timeout=300,
            )
            if done.returncode != 0:
                raise ComponentFailedToStart(
                    "postgres",
                    (done.stdout + done.stderr)[-4000:],
                    reason=f"initdb {self.data_dir} failed (exit {done.returncode})",
                )
            conf = self.data_dir / "postgresql.conf"
            with conf.open("a") as fh:
                fh.write("\n# Learner Ledger local stack settings (rewritten by `stack up`)\n")
                fh.write("include_if_exists = 'learnerledger.conf'\n")
        else:
            made_by = (self.data_dir / "PG_VERSION").read_text().strip()
            have = server_major_version(bin_dir)
            if have != "?" and made_by != have:
                raise StateDirUnusable(
                    f"{self.data_dir} was created by PostgreSQL {made_by} but the binaries in "
                    f"{bin_dir} are version {have}; set LOCAL_POSTGRES_BIN_DIR to version "
                    f"{made_by}'s bin directory, or delete {self.home} to start afresh"
                )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "unix_socket_permissions": "0700",
            # It is the ledger: durability on. synchronous_commit stays at its default (on).
            "fsync": "on",
            "full_page_writes": "on",
            "max_connections": "200",
            "shared_buffers": "128MB",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            "logging_collector": "off",
        }
        ours = self.data_dir / "learnerledger.conf"
        ours.write_text(
            "# Generated by learnerledger_devstack.postgres_server on every `stack up`.\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        ids = self._owner_ids()
        if ids is not None:
            os.chown(ours, *ids)
            if not self.log_file.exists():
                self.log_file.touch()
                os.chown(self.log_file, *ids)

    def start(self, bin_dir: Path, timeout: float) -> int:
        """``pg_ctl start -w``; returns the postmaster pid."""
        stale = self.data_dir / "postmaster.pid"
        if stale.exists() and processes.owned_pid(stale, str(self.data_dir)) is None:
            # A crash left it behind; pg_ctl would usually cope, but be explicit.
            with contextlib.suppress(OSError):
                stale.unlink()
        done = self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(max(1, int(timeout))),
                "start",
            ],
            timeout=timeout + 30,
        )
        pid = processes.read_pid(self.data_dir / "postmaster.pid")
        if done.returncode != 0 or pid is None:
            raise ComponentFailedToStart(
                "postgres",
                self.log_tail() or (done.stdout + done.stderr),
                reason=f"pg_ctl start exited {done.returncode}: {done.stderr.strip()[-500:]}",
            )
        processes.write_pid(self.pid_file, pid)
        return pid

    def ensure_app_role_and_database(self, timeout: float) -> None:
        """Create the logins and database ``learnerledger`` if missing (superuser over the
        socket); hand an old state dir's objects over to ``ll_owner``."""
        processes.run_coro(self._ensure_app_objects(timeout))

    async def _ensure_app_objects(self, seconds: float) -> None:
        import asyncpg

        conn = await asyncpg.connect(
            with_database(self.admin_database_url, "postgres"), timeout=seconds
        )
        try:
            passwords = db_logins.load_or_create_passwords(self.logins_file)
            await db_logins.ensure_logins(conn, passwords)
            owner = await conn.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", APP_DATABASE
            )
            if owner is None:
                await conn.execute(f"CREATE DATABASE {APP_DATABASE} OWNER {db_logins.OWNER_ROLE}")
            elif owner != db_logins.OWNER_ROLE:
                await conn.execute(f"ALTER DATABASE {APP_DATABASE} OWNER TO {db_logins.OWNER_ROLE}")
        finally:
            await conn.close()
        if await self._legacy_role_exists(seconds):
            conn = await asyncpg.connect(self.admin_database_url, timeout=seconds)
            try:
                await conn.execute(f"REASSIGN OWNED BY {LEGACY_APP_ROLE} TO {db_logins.OWNER_ROLE}")
                # Its password was well known (and it may CREATEROLE): it logs in no more.
                await conn.execute(f"ALTER ROLE {LEGACY_APP_ROLE} NOLOGIN")
            finally:
                await conn.close()

    async def _legacy_role_exists(self, seconds: float) -> bool:
        import asyncpg

        conn = await asyncpg.connect(
            with_database(self.admin_database_url, "postgres"), timeout=seconds
        )
        try:
            found = await conn.fetchval(
                "SELECT 1 FROM pg_roles WHERE rolname = $1", LEGACY_APP_ROLE
            )
        finally:
            await conn.close()
        return bool(found)

    def wait_ready(self, pid: int, timeout: float) -> str:
        """``SELECT 1`` as the app role over TCP until it works; returns the server version."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            if not processes.is_alive(pid):
                raise ComponentFailedToStart(
                    "postgres", self.log_tail(), reason=f"the postmaster (pid {pid}) exited"
                )
            try:
                return check_postgres(self.database_url, timeout=min(5.0, max(1.0, timeout)))
            except StackError as exc:
                cause = exc.__cause__
                last = f"{type(cause).__name__}: {cause}" if cause else str(exc)
            if time.monotonic() >= deadline:
                raise ComponentFailedToStart(
                    "postgres",
                    self.log_tail(),
                    reason=f"SELECT 1 on {self.address} failed for {timeout:.0f}s ({last})",
                )
            time.sleep(0.3)

    def stop(self, bin_dir: Path | None, timeout: float) -> int | None:
        """``pg_ctl stop -m fast``; if that fails, SIGINT / SIGKILL the postmaster's group."""
        pid = self.running_pid()
        if pid is not None:
            stopped = False
            if bin_dir is not None:
                with contextlib.suppress(subprocess.TimeoutExpired, StackError, OSError):
                    done = self._run(
                        [
                            str(bin_dir / "pg_ctl"),
                            "-D",
                            str(self.data_dir),
                            "-m",
                            "fast",
                            "-w",
                            "-t",
                            str(max(1, int(timeout))),
                            "stop",
                        ],
                        timeout=timeout + 10,
                    )
                    stopped = done.returncode == 0 and processes.wait_for_exit(pid, 5.0)
            if not stopped:
                processes.terminate(pid, timeout=timeout, first_signal=signal.SIGINT)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return pid


# --------------------------------------------------------------------------------------------


def check_postgres(dsn: str, timeout: float = 5.0, *, setting: str = "DATABASE_URL") -> str:
    """Connect to ``dsn`` and run ``SELECT 1``; return the server version string.

    Raises :class:`PostgresAuthFailed` for a wrong user/password and
    :class:`ComponentUnreachable` for anything else; both name ``setting``.
    """
    return processes.run_coro(_select_one(dsn, timeout, setting))


async def _select_one(dsn: str, seconds: float, setting: str) -> str:
    import asyncpg

    shown = mask_password(dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=seconds)
    except (
        asyncpg.InvalidPasswordError,
        asyncpg.InvalidAuthorizationSpecificationError,
    ) as exc:
        raise PostgresAuthFailed(
            f"PostgreSQL rejected the credentials in {setting}={shown}: {exc}. "
            f"Fix the user name / password in {setting} (the local stack's logins and their "
            "passwords are in <state dir>/postgres/logins.json)"
        ) from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise ComponentUnreachable(
            f"the database in {setting}={shown} does not exist: {exc}"
        ) from exc
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ComponentUnreachable(
            f"PostgreSQL at {setting}={shown} is not reachable ({type(exc).__name__}: {exc}); "
            "check the host/port or start the stack with `ledgerctl stack up`"
        ) from exc
    try:
        value = await conn.fetchval("SELECT 1")
        if value != 1:
            raise ComponentUnreachable(f"SELECT 1 on {shown} returned {value!r}")
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
