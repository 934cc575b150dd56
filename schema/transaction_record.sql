-- transaction_record: the claim table of rocketmq-exactlyonce (MySQL 5.7+, MariaDB 10.2+).
--
-- Column-compatible with the table of the Java ExactlyOnceConsumer
-- (ons-client-ext): a consumer group can move between the Java client and
-- this library on the same table without applying a message twice. The
-- message_id value is "<dedupe key>#<consumer group>", so the unique key on
-- message_id alone separates consumer groups.
--
-- Apply it by hand (mysql < schema/transaction_record.sql) or call
-- DataSource.Migrate. To use another table name, replace transaction_record
-- below and pass mqdatasource.WithTable.
--
-- message_id uses a binary (case-sensitive) collation: keys that differ only
-- in case are different messages.
CREATE TABLE IF NOT EXISTS `transaction_record` (
  `id`             bigint       NOT NULL AUTO_INCREMENT,
  `consumer_group` varchar(255) NOT NULL,
  `message_id`     varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `topic_name`     varchar(255) NOT NULL,
  `ctime`          bigint       NOT NULL COMMENT 'claim time, epoch milliseconds',
  `queue_id`       int          NOT NULL,
  `offset`         bigint       NOT NULL,
  `broker_name`    varchar(255) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_message_id` (`message_id`),
  KEY `ctime_key` (`ctime`),
  KEY `load_key` (`queue_id`, `broker_name`, `topic_name`, `ctime`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
