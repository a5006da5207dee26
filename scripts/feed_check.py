"""Reads brief's Atom feed with feedparser (PyPI) and checks it against the API: scripts/feed_test.sh runs it.

    feed_check.py BASE_URL

Checks: the feed parses cleanly (bozo 0), its title and self link, one entry per stored brief (newest first), and
for each entry: the title is the brief's English headline, the alternate link its page, the related link the
original article's address and the published date the article's, when the brief has them (absent when not).
"""
import json
import sys
import urllib.request
from datetime import datetime, timezone

import feedparser


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def main(base):
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    with urllib.request.urlopen(base + "/feed.atom", timeout=30) as r:
        content_type = r.headers.get("content-type")
        body = r.read()
    check(content_type == "application/atom+xml; charset=utf-8", f"content type {content_type!r}")
    feed = feedparser.parse(body)
    check(feed.bozo == 0, f"bozo == 0 ({feed.get('bozo_exception')!r})")
    check(feed.version == "atom10", f"Atom 1.0 ({feed.version!r})")
    check(feed.feed.get("title") == "brief: Indonesian news in English", f"feed title {feed.feed.get('title')!r}")
    self_links = [l["href"] for l in feed.feed.get("links", []) if l.get("rel") == "self"]
    check(self_links == [base + "/feed.atom"], f"self link {self_links}")

    listed = [b["id"] for b in get_json(base + "/v1/briefs")["briefs"]]
    ids = [e.get("id", "").removeprefix("urn:brief:") for e in feed.entries]
    check(ids == listed, f"{len(ids)} entries, the stored briefs newest first")
    with_source = 0
    for entry in feed.entries:
        brief_id = entry.get("id", "").removeprefix("urn:brief:")
        brief = get_json(f"{base}/v1/briefs/{brief_id}")
        source = brief["source"]
        rels = {}
        for link in entry.get("links", []):
            rels.setdefault(link.get("rel"), []).append(link["href"])
        check(entry.get("title") == brief["headline"]["english"], f"{brief_id}: title {entry.get('title')!r}")
        check(entry.get("summary") == brief["summary"], f"{brief_id}: summary")
        check(rels.get("alternate") == [f"{base}/briefs/{brief_id}"], f"{brief_id}: alternate {rels.get('alternate')}")
        url = source.get("url")
        check(rels.get("related") == ([url] if url else None), f"{brief_id}: related {rels.get('related')}")
        published = source.get("published_at")
        if published:
            want = datetime.fromisoformat(published.replace("Z", "+00:00")).astimezone(timezone.utc).timetuple()[:6]
            got = tuple(entry.get("published_parsed") or ())[:6]
            check(got == want, f"{brief_id}: published {entry.get('published')!r}")
        else:
            check("published" not in entry, f"{brief_id}: no published date")
        author = source.get("outlet") or "brief"
        check(entry.get("author") == author, f"{brief_id}: author {entry.get('author')!r}")
        with_source += bool(url or published)
    check(with_source >= 1, f"{len(feed.entries)} entries, {with_source} with the original's address or date")
    print(f"feed check: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/")))
