-- transaction_record: the claim table of rocketmq-exactlyonce (SQL Server 2016+).
--
-- The same columns as the MySQL table (schema/transaction_record.sql).
-- message_id is nvarchar, so that it stores every key exactly (a varchar of
-- code page 1252 would turn the characters it lacks into '?', and two keys
-- into one record), with a binary (case-sensitive) collation. The library
-- passes ASCII keys as varchar (mssql.VarChar), which the server widens to
-- nvarchar without a conversion of the column, so the unique index is used.
--
-- Apply it by hand (sqlcmd -i schema/transaction_record.sqlserver.sql) or
-- call DataSource.Migrate. To use another table name, replace
-- transaction_record below (constraint and index names included) and pass
-- mqdatasource.WithTable.
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
