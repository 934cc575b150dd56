-- The price-change example's own tables (PostgreSQL 12+).
-- The claim table, transaction_record, comes from
-- schema/transaction_record.postgres.sql (the program calls
-- DataSource.Migrate, which creates it).
-- Statements are separated by a semicolon at the end of a line.

-- product: the state the price changes update, one row per product.
-- change_count is +1 per change applied: not idempotent on purpose.
CREATE TABLE IF NOT EXISTS product (
  id           varchar(64) PRIMARY KEY,
  price_cents  bigint      NOT NULL,
  version      bigint      NOT NULL,
  change_count bigint      NOT NULL
);

-- price_history: one row per change applied. There is deliberately no unique
-- key on (product_id, version): a change applied twice shows as two rows
-- instead of being stopped by the business table.
CREATE TABLE IF NOT EXISTS price_history (
  id           bigserial   PRIMARY KEY,
  product_id   varchar(64) NOT NULL,
  version      bigint      NOT NULL,
  price_cents  bigint      NOT NULL,
  change_cents bigint      NOT NULL
);

CREATE INDEX IF NOT EXISTS price_history_product_version ON price_history (product_id, version);
