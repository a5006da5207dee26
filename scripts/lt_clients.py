#!/usr/bin/env python3
"""Runs real Python LibreTranslate clients against a `brief serve` on loopback and checks what they get back.

Usage: lt_clients.py --url http://127.0.0.1:PORT --expect EXPECT.json [--detect-language id] [--timeout 120]

EXPECT.json maps Indonesian input texts to the exact English the server gives for them (the caller makes it, e.g.
from the server's own /translate answers or a fixture), e.g. {"Harga beras naik lagi.": "Rice prices rose again."}.

Every check prints one line (PASS/FAIL, the library, the call); a failed check also prints what was expected and
what came back. Exits 0 when every check passed, 1 when one failed, 2 on a usage error. Only loopback URLs are
accepted, and proxies are bypassed, so nothing leaves the machine.

What each library sends (read from its source; see the LibreTranslate client notes):

* libretranslatepy 2.1.4 (`LibreTranslateAPI`, urllib):
  - translate: POST {url}/translate, application/x-www-form-urlencoded body `q=..&source=..&target=..`
    (`api_key` only when one is given, `api_key=` with ""), no `format`; reads `translatedText`.
  - detect: POST {url}/detect, form body `q=..`; returns the JSON as is (`[{"confidence", "language"}]`).
  - languages: GET {url}/languages *with a body*: urllib sends `Content-Type: application/x-www-form-urlencoded`
    and `Content-Length: 0` (or `api_key=..`) on the GET; returns the JSON as is.
  - any non-2xx raises urllib's HTTPError; the error text is not read.
* deep-translator 1.11.4 (`LibreTranslator`, requests):
  - the constructor needs a non-empty `api_key` (else ApiKeyException) and takes the server as `custom_url`
    (ending in "/"); 1.11.4 has no `base_url` parameter (it would be swallowed by **kwargs and the requests
    would go to libretranslate.de), so this script passes `custom_url` and checks where it points.
  - translate: POST {custom_url}translate?q=..&source=..&target=..&format=text&api_key=.. -- every field in the
    query string, an empty body and no Content-Type; reads `translatedText`. 403 -> AuthorizationException,
    other non-2xx -> ServerException(status). `source == target` or "" text returns the input unsent.
  - translate_batch: one translate() per text (no list `q`).
  - source="auto" is sent as `source=auto` (the server answers with `detectedLanguage`, which is ignored).
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import os
import signal
import sys
import traceback
import urllib.parse
from contextlib import contextmanager

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class CheckTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    """SIGALRM after `seconds` (requests and urllib calls here have no timeout of their own)."""

    def on_alarm(_signum, _frame):
        raise CheckTimeout(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Report:
    def __init__(self, timeout: int):
        self.timeout = timeout
        self.passed = 0
        self.failed = 0

    def line(self, ok: bool, library: str, call: str, detail: str = "") -> None:
        status = "PASS" if ok else "FAIL"
        print(f"{status} {library}: {call}" + (f" -> {detail}" if ok and detail else ""), flush=True)
        if not ok and detail:
            for l in detail.splitlines():
                print(f"    {l}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def run(self, library: str, call: str, fn, check, explain=None):
        """Calls fn(), then check(result) -> (ok, detail). An exception is a failure, described with explain()
        when given (for libraries whose exceptions hide the server's answer). Returns the result or None."""
        try:
            with time_limit(self.timeout):
                result = fn()
        except Exception as e:  # noqa: BLE001 -- any error of the client is the finding
            detail = describe_exception(e)
            if explain is not None:
                try:
                    with time_limit(self.timeout):
                        detail += "\n" + explain()
                except Exception as e2:  # noqa: BLE001
                    detail += f"\n(replaying the request failed too: {e2!r})"
            self.line(False, library, call, detail)
            return None
        try:
            ok, detail = check(result)
        except Exception as e:  # noqa: BLE001
            ok, detail = False, f"checking the answer failed: {e!r}\nanswer: {result!r}"
        self.line(ok, library, call, detail)
        return result


def describe_exception(e: BaseException) -> str:
    text = f"raised {type(e).__module__}.{type(e).__name__}: {e}"
    # urllib's HTTPError carries the server's answer; show it (the library itself never reads it).
    body = None
    if hasattr(e, "read") and hasattr(e, "code"):
        try:
            body = e.read().decode("utf-8", "replace")
        except Exception:  # noqa: BLE001
            body = None
        text += f"\nHTTP status {e.code}"
    if body:
        text += f"\nserver said: {body[:500]}"
    if not isinstance(e, (CheckTimeout, OSError)) and not hasattr(e, "code"):
        tb = traceback.extract_tb(e.__traceback__)
        if tb:
            last = tb[-1]
            text += f"\nat {os.path.basename(last.filename)}:{last.lineno} ({last.name})"
    return text


def same_text(expected: str):
    def check(got):
        if got == expected:
            return True, repr(got)
        diff = "\n".join(
            difflib.ndiff([expected], [got if isinstance(got, str) else repr(got)])
        )
        return False, f"expected: {expected!r}\n     got: {got!r}\ndiff:\n{diff}"

    return check


def same_list(expected: list[str]):
    def check(got):
        if got == expected:
            return True, f"{len(got)} texts"
        lines = [f"expected: {expected!r}", f"     got: {got!r}"]
        if isinstance(got, list):
            if len(got) != len(expected):
                lines.append(f"expected {len(expected)} texts, got {len(got)}")
            for i, (e, g) in enumerate(zip(expected, got)):
                if e != g:
                    lines.append(f"text {i}: expected {e!r}, got {g!r}")
        return False, "\n".join(lines)

    return check


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def languages_shape(result) -> tuple[bool, str]:
    problems = []
    if not isinstance(result, list) or not result:
        return False, f"expected a non-empty JSON array, got {result!r}"
    codes = []
    for i, lang in enumerate(result):
        if not isinstance(lang, dict):
            problems.append(f"[{i}] is not an object: {lang!r}")
            continue
        for key in ("code", "name"):
            if not isinstance(lang.get(key), str) or not lang.get(key):
                problems.append(f"[{i}].{key} is not a non-empty string: {lang.get(key)!r}")
        targets = lang.get("targets")
        # Mastodon and LibreTranslate's own page read `targets`.
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            problems.append(f"[{i}].targets is not an array of strings: {targets!r}")
        codes.append(lang.get("code"))
    if len(set(codes)) != len(codes):
        problems.append(f"repeated codes: {codes!r}")
    by_code = {l.get("code"): l for l in result if isinstance(l, dict)}
    if "id" not in by_code:
        problems.append(f"no 'id' entry (codes: {codes!r})")
    elif "en" not in (by_code["id"].get("targets") or []):
        problems.append(f"'id' does not list 'en' among its targets: {by_code['id'].get('targets')!r}")
    for lang in by_code.values():
        for t in lang.get("targets") or []:
            if t not in by_code:
                problems.append(f"{lang.get('code')!r} lists target {t!r}, which is not a listed language")
    if problems:
        return False, "\n".join(problems) + f"\nanswer: {json.dumps(result, ensure_ascii=False)}"
    return True, ", ".join(f"{l['code']}->{l['targets']}" for l in result)


def detect_shape(codes: set[str], want_language: str | None):
    def check(result) -> tuple[bool, str]:
        problems = []
        if not isinstance(result, list) or not result:
            return False, f"expected a non-empty JSON array, got {result!r}"
        for i, d in enumerate(result):
            if not isinstance(d, dict):
                problems.append(f"[{i}] is not an object: {d!r}")
                continue
            c, lang = d.get("confidence"), d.get("language")
            if not is_number(c) or not 0 <= c <= 100:
                problems.append(f"[{i}].confidence is not a number in 0..100: {c!r}")
            if not isinstance(lang, str) or not lang:
                problems.append(f"[{i}].language is not a non-empty string: {lang!r}")
            elif codes and lang not in codes:
                problems.append(f"[{i}].language {lang!r} is not one of /languages' codes {sorted(codes)!r}")
        confs = [d.get("confidence") for d in result if isinstance(d, dict) and is_number(d.get("confidence"))]
        if confs != sorted(confs, reverse=True):
            problems.append(f"not sorted by confidence, best first: {confs!r}")
        if want_language and isinstance(result[0], dict) and result[0].get("language") != want_language:
            problems.append(f"expected the best guess to be {want_language!r}, got {result[0].get('language')!r}")
        if problems:
            return False, "\n".join(problems) + f"\nanswer: {json.dumps(result, ensure_ascii=False)}"
        return True, json.dumps(result, ensure_ascii=False)

    return check


def usage(message: str):
    print(f"lt_clients.py: {message}", file=sys.stderr)
    sys.exit(2)


def loopback_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or parsed.hostname not in LOOPBACK or parsed.port is None:
        usage(f"--url must be http://127.0.0.1:PORT (or localhost/[::1]), got {url!r}")
    if parsed.path not in ("", "/") or parsed.query:
        usage(f"--url must be the server root, without a path: {url!r}")
    return f"http://{parsed.netloc}"


def load_expect(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        usage(f"{path}: {e}")
    if not isinstance(data, dict) or not data or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in data.items()
    ):
        usage(f"{path}: expected a non-empty JSON object mapping input texts to English strings")
    return data


def check_libretranslatepy(report: Report, url: str, expect: dict[str, str], want_language: str | None) -> None:
    lib = "libretranslatepy"
    try:
        from libretranslatepy import LibreTranslateAPI
    except Exception as e:  # noqa: BLE001
        report.line(False, lib, "import", describe_exception(e))
        return
    api = LibreTranslateAPI(url)  # api_key=None: the field is left out
    if not api.url.startswith(url):
        report.line(False, lib, "LibreTranslateAPI(url)", f"points at {api.url!r}, not {url!r}")
        return

    langs = report.run(lib, "languages()", api.languages, languages_shape)
    codes = {l.get("code") for l in langs if isinstance(l, dict)} if isinstance(langs, list) else set()

    for q, english in expect.items():
        report.run(lib, f"translate({q!r}, 'id', 'en')", lambda q=q: api.translate(q, "id", "en"), same_text(english))
    for q, english in expect.items():
        report.run(
            lib, f"translate({q!r}, 'auto', 'en')", lambda q=q: api.translate(q, "auto", "en"), same_text(english)
        )
    for q in expect:
        report.run(lib, f"detect({q!r})", lambda q=q: api.detect(q), detect_shape(codes, want_language))

    # The empty key many clients send (Discourse, Crow, Nextcloud, LibreTranslate's page): `api_key=` in the
    # form body, and on the GET /languages body too.
    blank = LibreTranslateAPI(url, api_key="")
    report.run(lib, "languages() [api_key='']", blank.languages, languages_shape)
    q, english = next(iter(expect.items()))
    report.run(lib, f"translate({q!r}, 'id', 'en') [api_key='']", lambda: blank.translate(q, "id", "en"), same_text(english))


def make_deep_translator(cls, url: str, source: str):
    params = inspect.signature(cls.__init__).parameters
    kwargs = {"source": source, "target": "en", "api_key": "brief-lt-clients"}
    # 1.11.x takes custom_url; older releases took base_url.
    if "custom_url" in params:
        kwargs["custom_url"] = url + "/"
    else:
        kwargs["base_url"] = url + "/"
    translator = cls(**kwargs)
    base = getattr(translator, "_base_url", None) or getattr(translator, "_LibreTranslator__base_url", None)
    if base != url + "/":
        raise RuntimeError(f"LibreTranslator points at {base!r}, not {url + '/'!r}; refusing to send anything")
    return translator


def replay_deep_translator(url: str, q: str, source: str) -> str:
    """deep-translator's exceptions keep only a status name; send its request again to show the answer."""
    import requests

    params = {"q": q, "source": source, "target": "en", "format": "text", "api_key": "brief-lt-clients"}
    r = requests.post(url + "/translate", params=params)
    return f"the same request again (POST /translate?{urllib.parse.urlencode(params)}, empty body): HTTP {r.status_code}: {r.text[:500]}"


def check_deep_translator(report: Report, url: str, expect: dict[str, str]) -> None:
    lib = "deep-translator"
    try:
        from deep_translator import LibreTranslator
    except Exception as e:  # noqa: BLE001
        report.line(False, lib, "import", describe_exception(e))
        return
    texts = list(expect)
    for source in ("id", "auto"):
        try:
            translator = make_deep_translator(LibreTranslator, url, source)
        except Exception as e:  # noqa: BLE001
            report.line(False, lib, f"LibreTranslator(source={source!r}, target='en', custom_url=...)", describe_exception(e))
            continue
        for q, english in expect.items():
            report.run(
                lib,
                f"LibreTranslator(source={source!r}).translate({q!r})",
                lambda q=q: translator.translate(q),
                same_text(english),
                explain=lambda q=q: replay_deep_translator(url, q, source),
            )
        if hasattr(translator, "translate_batch"):
            report.run(
                lib,
                f"LibreTranslator(source={source!r}).translate_batch({len(texts)} texts)",
                lambda: translator.translate_batch(texts),
                same_list([expect[t] for t in texts]),
                explain=lambda: replay_deep_translator(url, texts[0], source),
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the brief server, http://127.0.0.1:PORT")
    ap.add_argument("--expect", required=True, help="JSON object: Indonesian input -> the exact English expected")
    ap.add_argument(
        "--detect-language",
        default="id",
        help="language /detect must rank first for every input (default: id; '' checks only the shape)",
    )
    ap.add_argument("--timeout", type=int, default=120, help="seconds one client call may take (default: 120)")
    args = ap.parse_args()

    url = loopback_url(args.url)
    expect = load_expect(args.expect)
    # Loopback only: never through a proxy from the environment (urllib and requests both honour no_proxy).
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(var, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"

    versions = []
    for dist in ("libretranslatepy", "deep-translator", "requests", "urllib3"):
        try:
            from importlib.metadata import version

            versions.append(f"{dist} {version(dist)}")
        except Exception:  # noqa: BLE001
            versions.append(f"{dist} (not installed)")
    print(f"clients: {', '.join(versions)}; python {sys.version.split()[0]}; server {url}; {len(expect)} texts", flush=True)

    report = Report(args.timeout)
    check_libretranslatepy(report, url, expect, args.detect_language or None)
    check_deep_translator(report, url, expect)
    print(f"{report.passed} passed, {report.failed} failed", flush=True)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
