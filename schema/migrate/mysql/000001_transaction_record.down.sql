DROP TABLE IF EXISTS `transaction_record`;
