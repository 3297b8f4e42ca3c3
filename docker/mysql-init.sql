-- Run once by the mysql:8.0 image on an empty data volume (docker-entrypoint-initdb.d).
-- One database per service and one for the message history; the `sample` user owns them all.
-- The *_official databases belong to the `official-nsq` profile (official nsqd + nsqlookupd).
CREATE DATABASE IF NOT EXISTS orders CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS points CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS history CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS orders_official CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS points_official CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS history_official CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
GRANT ALL PRIVILEGES ON orders.* TO 'sample'@'%';
GRANT ALL PRIVILEGES ON points.* TO 'sample'@'%';
GRANT ALL PRIVILEGES ON history.* TO 'sample'@'%';
GRANT ALL PRIVILEGES ON orders_official.* TO 'sample'@'%';
GRANT ALL PRIVILEGES ON points_official.* TO 'sample'@'%';
GRANT ALL PRIVILEGES ON history_official.* TO 'sample'@'%';
FLUSH PRIVILEGES;
