-- Every feature row again: the feature SQL changed since the last version.
DELETE FROM lake.features;
INSERT INTO lake.features SELECT * FROM features;
