-- The claim table of rocketmq-exactlyonce (SQL Server 2016+), as
-- schema/transaction_record.sqlserver.sql creates it (a test keeps the two equal). The
-- table name is fixed: for another one (mqdatasource.WithTable), copy this
-- migration and replace transaction_record (index and constraint names included).

-- +goose Up
-- +goose StatementBegin
IF OBJECT_ID(N'[transaction_record]', N'U') IS NULL
BEGIN
  CREATE TABLE [transaction_record] (
    [id]             bigint       IDENTITY(1, 1) NOT NULL,
    [consumer_group] varchar(255) NOT NULL,
    [message_id]     nvarchar(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    [topic_name]     varchar(255) NOT NULL,
    [ctime]          bigint       NOT NULL,
    [queue_id]       int          NOT NULL,
    [offset]         bigint       NOT NULL,
    [broker_name]    varchar(255) NOT NULL,
    CONSTRAINT [pk_transaction_record] PRIMARY KEY ([id]),
    CONSTRAINT [uk_transaction_record_message_id] UNIQUE ([message_id])
  );
  CREATE INDEX [transaction_record_ctime_key] ON [transaction_record] ([ctime]);
  CREATE INDEX [transaction_record_load_key] ON [transaction_record] ([queue_id], [broker_name], [topic_name], [ctime]);
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE IF EXISTS [transaction_record];
