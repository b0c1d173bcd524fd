"""The reviewer console over real HTTP (no browser): sign-in, roles, CSRF, sessions, the blurred
media and its recorded reveal, decisions and appeals, and no hash on any page.
The same flow in headless Chromium is tests/test_console_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from console_fixtures import (
    PASSWORDS,
    Scenario,
    drain,
    high_frequency_energy,
    start_scenario,
    stop_scenario,
)
from PIL import Image

from blindmatch.node.console import accounts as acc
from blindmatch.node.console.media import render_media
from blindmatch.node.storage.reviewers import ReviewerStore
from blindmatch.node.storage.translog import TranslogStore

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LOGIN_CSRF = re.compile(r'name="login_csrf" value="([^"]+)"')


@pytest.fixture
async def sc(tmp_path: Path):
    scenario = await start_scenario(tmp_path)
    yield scenario
    await stop_scenario(scenario)


def client() -> aiohttp.ClientSession:
    # Cookies for 127.0.0.1 need the "unsafe" jar (aiohttp refuses IP hosts by default).
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(
    s: aiohttp.ClientSession, sc: Scenario, rid: str, password: str | None = None, nxt: str = ""
) -> aiohttp.ClientResponse:
    async with s.get(sc.console_url + "/login") as r:
        token = LOGIN_CSRF.search(await r.text()).group(1)  # type: ignore[union-attr]
    form = {
        "login_csrf": token,
        "reviewer_id": rid,
        "next": nxt,
        "password": PASSWORDS.get(rid, "") if password is None else password,
    }
    async with s.post(sc.console_url + "/login", data=form, allow_redirects=False) as r:
        await r.read()
        return r


async def page(s: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with s.get(url, allow_redirects=False) as r:
        return r.status, await r.text()


async def csrf_of(s: aiohttp.ClientSession, url: str) -> str:
    _, text = await page(s, url)
    return CSRF.search(text).group(1)  # type: ignore[union-attr]


def case_url(sc: Scenario) -> str:
    return f"{sc.console_url}/cases/{sc.case.case_ref.hex()}"


async def test_review_flow_blurred_until_revealed_then_decided(sc: Scenario) -> None:
    async with client() as s:
        r = await login(s, sc, "rev-1")
        assert r.status == 303 and r.headers["Location"] == "/console/"
        cookie = r.headers["Set-Cookie"]
        for attr in ("HttpOnly", "SameSite=Strict", "Path=/console"):
            assert attr in cookie
        status, queue = await page(s, sc.console_url + "/")
        assert status == 200 and f"Case {sc.case.case_ref.hex()[:8]}" in queue
        assert "a picture a survivor reported to hub" in queue and "Waiting for review" in queue
        async with s.get(case_url(sc)) as r:
            html = await r.text()
            for header, value in (
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
                ("Cache-Control", "no-store"),
            ):
                assert r.headers[header] == value
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert 'data-view="blurred"' in html and "view=blurred" in html
        assert "view=original" not in html
        # The blurred view is grayscale and has lost the picture's fine detail.
        async with s.get(case_url(sc) + "/media?view=blurred") as r:
            assert r.status == 200 and r.content_type == "image/jpeg"
            blurred = await r.read()
        assert Image.open(__import__("io").BytesIO(blurred)).mode == "L"
        # The original is refused until the reviewer reveals it, and the reveal needs a POST.
        async with s.get(case_url(sc) + "/media?view=original") as r:
            assert r.status == 403
        status, html = await page(s, case_url(sc) + "?view=original")
        assert 'data-view="blurred"' in html
        token = CSRF.search(html).group(1)  # type: ignore[union-attr]
        async with s.post(
            case_url(sc) + "/reveal", data={"csrf": token}, allow_redirects=False
        ) as r:
            assert r.status == 303 and "view=original" in r.headers["Location"]
        status, html = await page(s, case_url(sc) + "?view=original")
        assert 'data-view="original"' in html and "Original image revealed to rev-1" in html
        async with s.get(case_url(sc) + "/media?view=original") as r:
            assert r.status == 200
            original = await r.read()
        assert high_frequency_energy(original) > 8 * high_frequency_energy(blurred)
        # Decide.
        async with s.post(
            case_url(sc) + "/decide",
            allow_redirects=False,
            data={"csrf": token, "outcome": "dismissed", "reason": "not the reported picture"},
        ) as r:
            assert r.status == 303
        case = await sc.platform.decisions.case(sc.case.case_ref)
        assert (case.state, case.decided_by, case.reason) == (
            "dismissed",
            "rev-1",
            "not the reported picture",
        )
        status, html = await page(s, case_url(sc))
        assert "Decision: dismissed by rev-1" in html
        assert "not the reported picture" in html
        status, log = await page(s, sc.console_url + "/log")
        assert status == 200 and "dismissed" in log
        # The queue is empty now; the platform's dispute reaches the hub.
        status, queue = await page(s, sc.console_url + "/")
        assert "Nothing is waiting for review" in queue
    await drain(sc.platform)
    opinion = await sc.hub.decisions.opinion("hub", sc.case.item_ref)
    assert opinion.disputes == 1


async def test_unauthenticated_requests_are_refused(sc: Scenario) -> None:
    async with client() as s:
        for path in (
            "/",
            "/log",
            "/reports",
            "/admin/reviewers",
            f"/cases/{sc.case.case_ref.hex()}",
            f"/cases/{sc.case.case_ref.hex()}/media?view=blurred",
        ):
            status, _ = await page(s, sc.console_url + path)
            assert status == 303, path
        async with s.get(case_url(sc), allow_redirects=False) as r:
            assert r.headers["Location"].startswith("/console/login?next=")
        for path, form in (("/decide", {"outcome": "actioned", "reason": "x"}), ("/reveal", {})):
            async with s.post(case_url(sc) + path, data=form, allow_redirects=False) as r:
                assert r.status == 401
        # A forged cookie is no session either.
        s.cookie_jar.update_cookies({"bm_console": "A" * 43})
        status, _ = await page(s, sc.console_url + "/")
        assert status == 303
    case = await sc.platform.decisions.case(sc.case.case_ref)
    assert case.state == "queued"
    assert [h["event"] for h in await sc.platform.decisions.history(case.case_ref)] == [
        "opened:queued"
    ]


async def test_auditor_reads_but_cannot_decide_or_see_media(sc: Scenario) -> None:
    async with client() as s:
        r = await login(s, sc, "aud-1")
        assert r.headers["Location"] == "/console/log"
        status, html = await page(s, case_url(sc))
        assert status == 200 and "History" in html
        assert "<img" not in html and 'id="decide"' not in html and 'id="reveal"' not in html
        token = await csrf_of(s, sc.console_url + "/log")
        for path, form in (("/decide", {"outcome": "actioned", "reason": "x"}), ("/reveal", {})):
            async with s.post(
                case_url(sc) + path, data={"csrf": token, **form}, allow_redirects=False
            ) as r:
                assert r.status == 403, path
        for view in ("blurred", "original"):
            status, _ = await page(s, case_url(sc) + f"/media?view={view}")
            assert status == 403
        for path in ("/", "/admin/reviewers"):
            status, _ = await page(s, sc.console_url + path)
            assert status == 403
        for path in ("/log", "/reports"):
            status, _ = await page(s, sc.console_url + path)
            assert status == 200
    async with client() as s:
        await login(s, sc, "rev-1")
        status, _ = await page(s, sc.console_url + "/admin/reviewers")
        assert status == 403
        token = await csrf_of(s, sc.console_url + "/")
        async with s.post(
            sc.console_url + "/admin/reviewers",
            allow_redirects=False,
            data={
                "csrf": token,
                "reviewer_id": "sneaky",
                "role": "admin",
                "password": "0123456789ab",
            },
        ) as r:
            assert r.status == 403
    case = await sc.platform.decisions.case(sc.case.case_ref)
    assert case.state == "queued"
    assert await sc.platform.db.fetch_value("SELECT COUNT(*) FROM reviewers") == 3


async def test_post_without_or_with_wrong_csrf_changes_nothing(sc: Scenario) -> None:
    async with client() as s:
        await login(s, sc, "rev-1")
        good = await csrf_of(s, case_url(sc))
        for form in ({}, {"csrf": ""}, {"csrf": good[:-1] + ("A" if good[-1] != "A" else "B")}):
            for path, extra in (
                ("/decide", {"outcome": "actioned", "reason": "x"}),
                ("/reveal", {}),
            ):
                async with s.post(
                    case_url(sc) + path, data={**form, **extra}, allow_redirects=False
                ) as r:
                    assert r.status == 403
            async with s.post(sc.console_url + "/logout", data=form, allow_redirects=False) as r:
                assert r.status == 403
        # An oversized form is refused before it is read.
        form_type = {"Content-Type": "application/x-www-form-urlencoded"}
        big = b"x" * 70_000
        async with s.post(
            case_url(sc) + "/decide", data=big, allow_redirects=False, headers=form_type
        ) as r:
            assert r.status == 413
        # Another reviewer's token is not this session's token.
        async with client() as other:
            await login(other, sc, "admin-1")
            foreign = await csrf_of(other, sc.console_url + "/")
        async with s.post(
            case_url(sc) + "/decide",
            allow_redirects=False,
            data={"csrf": foreign, "outcome": "actioned", "reason": "x"},
        ) as r:
            assert r.status == 403
        status, _ = await page(s, sc.console_url + "/")
        assert status == 200  # still signed in
    case = await sc.platform.decisions.case(sc.case.case_ref)
    assert case.state == "queued" and case.decided_by is None
    events = [h["event"] for h in await sc.platform.decisions.history(case.case_ref)]
    assert events == ["opened:queued"]


async def test_sessions_expire_and_logout_ends_them(sc: Scenario) -> None:
    async with client() as s:
        r = await login(s, sc, "rev-1")
        token = r.cookies["bm_console"].value
        stored = await sc.platform.db.fetch_all("SELECT token_hash FROM reviewer_sessions")
        assert [bytes(x["token_hash"]) for x in stored] == [acc.token_hash(token)]
        assert (
            token.encode()
            not in (await sc.platform.db.fetch_all("SELECT * FROM reviewer_sessions"))[0]
            .values()
            .__repr__()
            .encode()
        )
        sc.clock.advance(acc.SESSION_SECONDS - 60)
        assert (await page(s, sc.console_url + "/"))[0] == 200
        sc.clock.advance(61)
        status, _ = await page(s, sc.console_url + "/")
        assert status == 303
        # Logout.
        await login(s, sc, "rev-1")
        csrf = await csrf_of(s, sc.console_url + "/")
        token = next(c.value for c in s.cookie_jar if c.key == "bm_console")
        async with s.post(
            sc.console_url + "/logout", data={"csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 303 and r.headers["Location"] == "/console/login"
        assert (await page(s, sc.console_url + "/"))[0] == 303
    async with client() as s:  # the old cookie, replayed, is dead
        s.cookie_jar.update_cookies({"bm_console": token})
        assert (await page(s, sc.console_url + "/"))[0] == 303


async def test_wrong_password_rate_limit_and_disabled_accounts(sc: Scenario) -> None:
    async with client() as s:
        r = await login(s, sc, "rev-1", "wrong password!")
        assert r.status == 401 and "bm_console" not in r.cookies
        r = await login(s, sc, "nobody", "wrong password!")
        assert r.status == 401
        for _ in range(4):
            await login(s, sc, "rev-1", "still wrong!!")
        r = await login(s, sc, "rev-1")  # right password, but locked out for now
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0
        sc.clock.advance(901)
        r = await login(s, sc, "rev-1")
        assert r.status == 303
        # A login form without its cookie-bound token is refused.
    async with client() as s:
        form = {"login_csrf": "x" * 32, "reviewer_id": "rev-1", "password": PASSWORDS["rev-1"]}
        async with s.post(sc.console_url + "/login", data=form, allow_redirects=False) as r:
            assert r.status == 403
    # An admin disables rev-1: its live session ends at once.
    async with client() as rev, client() as admin:
        await login(rev, sc, "rev-1")
        assert (await page(rev, sc.console_url + "/"))[0] == 200
        await login(admin, sc, "admin-1")
        token = await csrf_of(admin, sc.console_url + "/admin/reviewers")
        async with admin.post(
            sc.console_url + "/admin/reviewers/rev-1/disable", data={"csrf": token}
        ) as r:
            assert r.status == 200 and "disabled" in await r.text()
        assert (await page(rev, sc.console_url + "/"))[0] == 303
        r = await login(rev, sc, "rev-1")
        assert r.status == 401
        # The admin adds a reviewer through the page; the password is stored as scrypt.
        async with admin.post(
            sc.console_url + "/admin/reviewers",
            data={
                "csrf": token,
                "reviewer_id": "rev-2",
                "role": "reviewer",
                "password": "a new long password",
            },
        ) as r:
            assert r.status == 200 and "Reviewer added" in await r.text()
        stored = await sc.platform.db.fetch_value(
            "SELECT password_hash FROM reviewers WHERE reviewer_id = 'rev-2'"
        )
        assert stored.startswith("scrypt$131072$8$1$") and "a new long password" not in stored
        assert acc.verify_password("a new long password", stored)
        assert not acc.verify_password("a new long passwork", stored)


async def test_next_parameter_is_not_an_open_redirect(sc: Scenario) -> None:
    for nxt, expected in (
        ("//evil.example/x", "/console/"),
        ("https://evil.example", "/console/"),
        ("/console/log", "/console/log"),
    ):
        async with client() as s:
            r = await login(s, sc, "rev-1", nxt=nxt)
            assert r.headers["Location"] == expected


async def test_appeal_handled_in_the_console(sc: Scenario) -> None:
    node = sc.platform
    await node.decisions.decide(sc.case.case_ref, "actioned", "policy-test", "match")
    await node.decisions.open_appeal(sc.case.case_ref, "this is my own photo")
    async with client() as s:
        await login(s, sc, "rev-1")
        _, queue = await page(s, sc.console_url + "/")
        assert "Appeal open" in queue
        _, html = await page(s, case_url(sc))
        assert 'id="appeal-submit"' in html and "Appeal opened by the uploader" in html
        token = CSRF.search(html).group(1)  # type: ignore[union-attr]
        async with s.post(
            case_url(sc) + "/appeal",
            allow_redirects=False,
            data={"csrf": token, "appeal": "uphold", "reason": "consent shown"},
        ) as r:
            assert r.status == 303
        _status, html = await page(s, case_url(sc))
        assert "Appeal upheld by rev-1" in html
    case = await node.decisions.case(sc.case.case_ref)
    assert (case.appeal, case.state) == ("upheld", "dismissed")


async def test_no_hash_on_any_page(sc: Scenario) -> None:
    hex64 = re.compile(r"[0-9a-fA-F]{64}")
    job_ref = await sc.platform.db.fetch_value(
        "SELECT job_ref FROM cases WHERE case_ref = ?", sc.case.case_ref
    )
    query_hashes = [q.hash.hex() for q in await sc.platform.querier.job_queries(bytes(job_ref))]
    assert query_hashes
    pages = []
    for rid, paths in (
        ("rev-1", ["/", f"/cases/{sc.case.case_ref.hex()}", "/log", "/reports"]),
        ("admin-1", ["/admin/reviewers", "/"]),
        ("aud-1", ["/log", "/reports", f"/cases/{sc.case.case_ref.hex()}"]),
    ):
        async with client() as s:
            await login(s, sc, rid)
            for path in paths:
                status, text = await page(s, sc.console_url + path)
                assert status == 200, (rid, path)
                pages.append(text)
    for text in pages:
        assert sc.held_hex not in text.lower()
        assert not hex64.search(text)
        for q in query_hashes:
            assert q not in text


def test_blur_is_server_side_and_strips_detail() -> None:
    from console_fixtures import jpeg, photo

    data = jpeg(photo(3))
    blurred = render_media(data, blurred=True)
    original = render_media(data, blurred=False)
    assert high_frequency_energy(original) > 8 * high_frequency_energy(blurred)
    from io import BytesIO

    assert Image.open(BytesIO(blurred)).mode == "L"
    assert Image.open(BytesIO(original)).mode == "RGB"


def test_password_hash_format_and_constant_time_paths() -> None:
    stored = acc.hash_password("a password of length")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "131072", "8", "1")  # OWASP: N=2^17, r=8, p=1
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert acc.hash_password("a password of length") != stored  # salted
    assert acc.verify_password("a password of length", stored)
    for bad in (
        "",
        "scrypt$",
        "bcrypt$16384$8$1$00$00",
        stored.replace("$131072$", "$1048576$"),  # more memory than a check may take
        stored.replace("$8$1$", "$16$1$"),
        stored[:-2],
    ):
        assert not acc.verify_password("a password of length", bad)


def test_reviewer_cli_add_list_disable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from blindmatch.node.cli.main import main
    from blindmatch.node.clock import SystemClock
    from blindmatch.node.storage import open_database

    url = f"sqlite:///{tmp_path / 'node.db'}"
    pw = tmp_path / "pw.txt"
    pw.write_text("a long enough password\n")
    assert main(["reviewer", "add", "alice", "--role", "admin", "--db", url,
                 "--password-file", str(pw)]) == 0  # fmt: skip
    assert main(["reviewer", "add", "alice", "--role", "admin", "--db", url,
                 "--password-file", str(pw)]) == 1  # fmt: skip
    short_pw = tmp_path / "short.txt"
    short_pw.write_text("short\n")
    assert main(["reviewer", "add", "bob", "--role", "auditor", "--db", url,
                 "--password-file", str(short_pw)]) == 1  # fmt: skip
    assert main(["reviewer", "add", "bob", "--role", "auditor", "--db", url,
                 "--password-file", str(pw)]) == 0  # fmt: skip
    assert main(["reviewer", "disable", "bob", "--db", url]) == 0
    assert main(["reviewer", "disable", "nobody", "--db", url]) == 1
    capsys.readouterr()
    assert main(["reviewer", "list", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "admin" in out and "bob" in out and "disabled" in out
    assert "a long enough password" not in out

    async def check() -> tuple[object, object]:
        db = await open_database(url, migrate_now=SystemClock().now())
        try:
            accounts = acc.Accounts(ReviewerStore(db), SystemClock().now)
            return (
                await accounts.authenticate("alice", "a long enough password"),
                await accounts.authenticate("bob", "a long enough password"),
            )
        finally:
            await db.close()

    alice, bob = asyncio.run(check())
    assert alice is not None and bob is None  # bob is disabled


async def test_auditor_sees_decision_entries_of_the_verifiable_log(sc: Scenario) -> None:
    try:
        from blindmatch.node.translog.hooks import log_decision
        from blindmatch.node.translog.log import TransparencyLog
    except ImportError as exc:  # the verifiable log is optional for the console
        pytest.skip(f"the verifiable log is not available: {exc}")
    node = sc.platform
    translog = TransparencyLog(TranslogStore(node.db), node.node_id, node.keys.identity, node.clock)
    await translog.load()
    node.translog = translog  # what the node will carry once the log is integrated
    try:
        await log_decision(translog, decision_id=bytes(range(16)), match_id=bytes(16),
                           outcome="dismissed", decided_by="reviewer")  # fmt: skip
        async with client() as s:
            await login(s, sc, "aud-1")
            status, html = await page(s, sc.console_url + "/log")
        assert status == 200 and "Verifiable log" in html
        assert "<td>dismissed</td><td>reviewer</td><td>00010203…</td>" in html
    finally:
        del node.translog


async def test_escalate_then_decide_and_closed_cases_refuse_decisions(sc: Scenario) -> None:
    node = sc.platform
    async with client() as s:
        await login(s, sc, "rev-1")
        token = await csrf_of(s, case_url(sc))
        form = {"csrf": token, "outcome": "escalated", "reason": "unsure: needs a second look"}
        async with s.post(case_url(sc) + "/decide", data=form, allow_redirects=False) as r:
            assert r.status == 303
        case = await node.decisions.case(sc.case.case_ref)
        assert case.state == "escalated" and case.priority > sc.case.priority
        _, queue = await page(s, sc.console_url + "/")
        assert "Escalated" in queue
        # A missing reason or outcome is refused with a message and changes nothing.
        for bad in ({"outcome": "actioned", "reason": " "}, {"outcome": "delete", "reason": "x"}):
            async with s.post(case_url(sc) + "/decide", data={"csrf": token, **bad}) as r:
                assert r.status == 400 and 'role="alert"' in await r.text()
        assert (await node.decisions.case(sc.case.case_ref)).state == "escalated"
        # The holder withdraws the item: the case closes and offers no decision form.
        await sc.hub.decisions.withdraw_item(sc.case.item_ref)
        await node.sync.sync_all()
        assert (await node.decisions.case(sc.case.case_ref)).state == "closed"
        _, html = await page(s, case_url(sc))
        assert 'id="decide"' not in html and "Closed" in html
        form = {"csrf": token, "outcome": "actioned", "reason": "late"}
        async with s.post(case_url(sc) + "/decide", data=form) as r:
            assert r.status == 409
        # Signing in again in the same browser ends the previous session.
        await login(s, sc, "rev-1")
        assert await node.db.fetch_value("SELECT COUNT(*) FROM reviewer_sessions") == 1


async def test_cookies_are_secure_over_tls(sc: Scenario, tmp_path: Path) -> None:
    import shutil
    import ssl
    import subprocess

    from aiohttp import web

    from blindmatch.node.console import console_root_app

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(console_root_app(sc.platform), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        tls = Scenario(**{**sc.__dict__, "console_url": f"https://127.0.0.1:{port}/console"})
        connector = aiohttp.TCPConnector(ssl=False)  # self-signed, test only
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as s:
            async with s.get(f"https://127.0.0.1:{port}/", allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == "/console/"
            r = await login(s, tls, "rev-1")
            assert r.status == 303
            cookie = r.headers["Set-Cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    finally:
        await runner.cleanup()


async def test_accounts_and_sessions_on_each_backend(db, clock) -> None:  # type: ignore[no-untyped-def]
    accounts = acc.Accounts(ReviewerStore(db), clock.now)
    await accounts.create("rev.a@example", "reviewer", "a long enough password")
    with pytest.raises(acc.AccountError):
        await accounts.create("rev.a@example", "admin", "another long password")
    refused = [
        ("bad id", "reviewer", "a long enough password"),
        ("ok", "boss", "a long enough password"),
        ("ok", "reviewer", "short"),
        ("policy", "reviewer", "a long enough password"),
    ]
    for rid, role, pw in refused:
        with pytest.raises(acc.AccountError):
            await accounts.create(rid, role, pw)
    assert await accounts.authenticate("rev.a@example", "a long enough password")
    assert await accounts.authenticate("rev.a@example", "a long enough passwore") is None
    assert await accounts.authenticate("nobody", "a long enough password") is None
    token, session = await accounts.start_session("rev.a@example")
    live = await accounts.session(token)
    assert live is not None and live.role == "reviewer" and live.csrf_token == session.csrf_token
    assert await accounts.session(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert await accounts.session("not base64 at all!") is None
    clock.advance(acc.SESSION_SECONDS)
    assert await accounts.session(token) is None  # expired
    token, session = await accounts.start_session("rev.a@example")
    assert await db.fetch_value("SELECT COUNT(*) FROM reviewer_sessions") == 1  # expired swept
    await accounts.set_password("rev.a@example", "a brand new password")
    assert await accounts.session(token) is None  # a new password ends sessions
    assert await accounts.authenticate("rev.a@example", "a brand new password")
    token, _ = await accounts.start_session("rev.a@example")
    await accounts.set_disabled("rev.a@example")
    assert await accounts.session(token) is None
    assert await accounts.authenticate("rev.a@example", "a brand new password") is None
    with pytest.raises(acc.AccountError):
        await accounts.start_session("rev.a@example")
    await accounts.set_disabled("rev.a@example", False)
    assert [r.reviewer_id for r in await accounts.list()] == ["rev.a@example"]


def test_login_limiter_holds_the_guesser_not_the_reviewer() -> None:
    now = [1000]
    limiter = acc.LoginLimiter(lambda: now[0], attempts=3, source_attempts=20, base_lock_s=60,
                               max_lock_s=600, window_s=3600)  # fmt: skip
    for _ in range(3):
        assert limiter.retry_after("10.0.0.9", "Rev") == 0
        limiter.failed("10.0.0.9", "rev")
        now[0] += 10
    # the guesser waits; the reviewer, signing in from elsewhere, does not
    assert limiter.retry_after("10.0.0.9", "REV") == 50  # 60 s from the third failure
    assert limiter.retry_after("192.168.1.5", "rev") == 0
    # each further failure doubles the wait, up to the cap
    now[0] += 40
    limiter.failed("10.0.0.9", "rev")
    assert limiter.retry_after("10.0.0.9", "rev") == 120
    for _ in range(5):
        now[0] += 600
        limiter.failed("10.0.0.9", "rev")
    assert limiter.retry_after("10.0.0.9", "rev") == 600
    # one source spraying many IDs is held as a whole
    for i in range(20):
        limiter.failed("10.0.0.7", f"id{i}")
    assert limiter.retry_after("10.0.0.7", "someone-else") == 60
    # a success clears its pair (not its source's count); an hour without failures forgets them
    limiter.succeeded("10.0.0.9", "rev")
    assert limiter.retry_after("10.0.0.9", "rev") == 0
    now[0] += 3600
    assert limiter.retry_after("10.0.0.7", "someone-else") == 0


async def test_old_password_hashes_are_upgraded_at_login(db) -> None:  # type: ignore[no-untyped-def]
    accounts = acc.Accounts(ReviewerStore(db), lambda: 1_700_000_000)
    await accounts.create("rev.old", "reviewer", "an old password here")
    salt = b"\x01" * 16
    old = "scrypt$16384$8$1$" + salt.hex() + "$" + acc._scrypt(
        "an old password here", salt, 2**14, 8, 1).hex()  # fmt: skip
    await db.execute("UPDATE reviewers SET password_hash = ? WHERE reviewer_id = ?", old,
                     "rev.old")  # fmt: skip
    assert acc.needs_rehash(old)
    assert await accounts.authenticate("rev.old", "a wrong password") is None
    assert await db.fetch_value("SELECT password_hash FROM reviewers") == old
    assert await accounts.authenticate("rev.old", "an old password here") is not None
    stored = await db.fetch_value("SELECT password_hash FROM reviewers")
    assert stored.startswith("scrypt$131072$8$1$") and not acc.needs_rehash(stored)
    assert await accounts.authenticate("rev.old", "an old password here") is not None
