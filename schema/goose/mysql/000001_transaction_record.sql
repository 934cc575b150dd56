-- The claim table of rocketmq-exactlyonce (MySQL 5.7+ / MariaDB 10.2+), as
-- schema/transaction_record.sql creates it (a test keeps the two equal). The
-- table name is fixed: for another one (mqdatasource.WithTable), copy this
-- migration and replace transaction_record.

-- +goose Up
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

-- +goose Down
DROP TABLE IF EXISTS `transaction_record`;
