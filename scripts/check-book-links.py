#!/usr/bin/env python3
"""Checks the links of the built guide (mdbook's HTML): every link to another page must
reach a page of the book, and every #fragment an id on that page. Links to other sites are
not followed (CI has no internet). Exits 1 and lists each broken link.

    python3 scripts/check-book-links.py docs/book
"""
import html.parser
import os
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()
        self.links = []
        self.in_main = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])
        if tag == "main":
            self.in_main += 1
        # Only the pages' own text: the theme's navigation is mdbook's business.
        if tag == "a" and self.in_main and attrs.get("href") is not None:
            self.links.append((attrs["href"], self.getpos()[0]))

    def handle_endtag(self, tag):
        if tag == "main":
            self.in_main -= 1


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "docs/book"
    pages = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".html"):
                path = os.path.normpath(os.path.join(folder, name))
                parser = Page()
                with open(path, encoding="utf-8") as f:
                    parser.feed(f.read())
                pages[path] = parser
    if not pages:
        sys.exit(f"{root}: no HTML pages; build the book first (mdbook build docs)")
    broken = []
    for path, page in sorted(pages.items()):
        # The print page repeats every page's links; they are checked where they come from.
        if os.path.basename(path) in ("print.html", "404.html", "toc.html"):
            continue
        for href, line in page.links:
            url = urllib.parse.urlsplit(href)
            if url.scheme or url.netloc or href.startswith("mailto:"):
                continue
            target = path
            if url.path:
                target = os.path.normpath(
                    os.path.join(os.path.dirname(path), urllib.parse.unquote(url.path))
                )
                if os.path.isdir(target):
                    target = os.path.join(target, "index.html")
            if target.endswith(".html"):
                if target not in pages:
                    broken.append(f"{path}:{line}: {href}: no such page")
                    continue
                fragment = urllib.parse.unquote(url.fragment)
                if fragment and fragment not in pages[target].ids:
                    broken.append(f"{path}:{line}: {href}: no #{fragment} on that page")
            elif not os.path.exists(target):
                broken.append(f"{path}:{line}: {href}: no such file in the book")
    for problem in broken:
        print(problem, file=sys.stderr)
    if broken:
        sys.exit(f"{len(broken)} broken link(s) in {root}")
    count = sum(len(p.links) for p in pages.values())
    print(f"{root}: {len(pages)} pages, {count} links, none broken")


main()
