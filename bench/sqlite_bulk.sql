-- sqlite3 bulk insert and query, in memory: row and index pages, sorting and grouping all
-- go through the C allocator. Values come from arithmetic, not random(), so the output is
-- the same for every allocator.
CREATE TABLE item(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, body BLOB);
BEGIN;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000)
INSERT INTO item
SELECT x, (x * 7919) % 1009,
       printf('item-%07d-%s', (x * 2654435761) % 1000003, hex(x * 31)),
       zeroblob(16 + (x * 13) % 240)
FROM n;
COMMIT;
CREATE INDEX item_grp ON item(grp, name);
CREATE TABLE grp(id INTEGER PRIMARY KEY, label TEXT);
INSERT INTO grp SELECT DISTINCT grp, 'group-' || grp FROM item;
SELECT count(*), sum(grp), sum(length(name)), sum(length(body)) FROM item;
SELECT grp, count(*), min(name), max(name) FROM item GROUP BY grp ORDER BY count(*) DESC, grp LIMIT 5;
SELECT g.label, count(*) FROM item i JOIN grp g ON g.id = i.grp
 WHERE i.name LIKE 'item-00%' GROUP BY g.label ORDER BY 2 DESC, 1 LIMIT 5;
SELECT name FROM item ORDER BY name DESC LIMIT 3;
UPDATE item SET name = upper(name) WHERE id % 5 = 0;
DELETE FROM item WHERE grp % 4 = 0;
SELECT count(*), sum(length(name)) FROM item WHERE name GLOB 'ITEM-*';
