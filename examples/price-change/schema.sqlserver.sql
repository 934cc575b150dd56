-- The price-change example's own tables (SQL Server 2016+). Untested: no
-- SQL Server can run where this example is developed.
-- The claim table, transaction_record, comes from
-- schema/transaction_record.sqlserver.sql (the program calls
-- DataSource.Migrate, which creates it).
-- Statements are separated by a semicolon at the end of a line.

-- product: the state the price changes update, one row per product.
-- change_count is +1 per change applied: not idempotent on purpose.
IF OBJECT_ID(N'product', N'U') IS NULL
CREATE TABLE product (
  id           varchar(64) NOT NULL PRIMARY KEY,
  price_cents  bigint      NOT NULL,
  version      bigint      NOT NULL,
  change_count bigint      NOT NULL
);

-- price_history: one row per change applied. There is deliberately no unique
-- key on (product_id, version): a change applied twice shows as two rows
-- instead of being stopped by the business table.
IF OBJECT_ID(N'price_history', N'U') IS NULL
CREATE TABLE price_history (
  id           bigint      IDENTITY(1, 1) NOT NULL PRIMARY KEY,
  product_id   varchar(64) NOT NULL,
  version      bigint      NOT NULL,
  price_cents  bigint      NOT NULL,
  change_cents bigint      NOT NULL,
  INDEX product_version (product_id, version)
);
