-- The price-change example's own tables (MySQL 5.7+, MariaDB 10.2+).
-- The claim table, transaction_record, comes from schema/transaction_record.sql
-- (the program calls DataSource.Migrate, which creates it).
-- Statements are separated by a semicolon at the end of a line.

-- product: the state the price changes update, one row per product.
CREATE TABLE IF NOT EXISTS product (
  id           varchar(64) NOT NULL,
  price_cents  bigint      NOT NULL,
  version      bigint      NOT NULL COMMENT 'version of the last change applied',
  change_count bigint      NOT NULL COMMENT 'changes applied: +1 per change, not idempotent on purpose',
  PRIMARY KEY (id)
) ENGINE = InnoDB;

-- price_history: one row per change applied. There is deliberately no unique
-- key on (product_id, version): a change applied twice shows as two rows
-- instead of being stopped by the business table.
CREATE TABLE IF NOT EXISTS price_history (
  id           bigint      NOT NULL AUTO_INCREMENT,
  product_id   varchar(64) NOT NULL,
  version      bigint      NOT NULL,
  price_cents  bigint      NOT NULL,
  change_cents bigint      NOT NULL,
  PRIMARY KEY (id),
  KEY product_version (product_id, version)
) ENGINE = InnoDB;
