"""A pure-Python benchmark heavy on small objects: binary trees, dicts of records, string
building and sorting. Run with PYTHONMALLOC=malloc so every object comes from the C
allocator being measured. Prints a checksum that does not depend on the allocator."""

import sys


class Record:
    __slots__ = ("key", "name", "tags")

    def __init__(self, key, name, tags):
        self.key = key
        self.name = name
        self.tags = tags


def tree(depth):
    return (tree(depth - 1), tree(depth - 1)) if depth else None


def count(node):
    return 1 if node is None else 1 + count(node[0]) + count(node[1])


def trees(depth):
    total = 0
    for d in range(4, depth + 1, 2):
        for _ in range(1 << (depth - d)):
            total += count(tree(d))
    return total


def records(n):
    table = {}
    for i in range(n):
        key = (i * 2654435761) % 1000003
        table[key] = Record(key, "rec-%07d" % key, [key % 7, key % 11, key % 13])
    by_tags = {}
    for rec in table.values():
        by_tags.setdefault(tuple(rec.tags), []).append(rec.name)
    for key, rec in table.items():
        if rec.name != "rec-%07d" % key:
            sys.exit(3)
    return len(table) + sum(len(v) for v in by_tags.values())


def strings(n):
    parts = []
    for i in range(n):
        parts.append("".join(chr(97 + (i * j) % 26) for j in range(i % 40)))
    text = " ".join(parts)
    words = sorted(set(text.split()), key=lambda w: (len(w), w))
    return len(text) + len(words) + sum(map(len, words[:1000]))


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    total = 0
    for _ in range(scale):
        total += trees(17) + records(200000) + strings(80000)
    print("checksum=%016x" % total)


main()
