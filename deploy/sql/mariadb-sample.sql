-- Sample schema and data on the MariaDB primary, for `make demo` and
-- `docker compose up` (cluster "my" in config.toml). Run as root; the
-- database app and the user app exist already. Replicates to the replica.
USE app;
CREATE TABLE accounts (
    id         bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
    owner      varchar(64) NOT NULL,
    balance    decimal(12, 2) NOT NULL DEFAULT 0,
    created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE = InnoDB;
INSERT INTO accounts (owner, balance) VALUES
    ('alice', 100.00), ('bob', 250.50), ('carol', 75.00), ('dave', 0.00), ('erin', 1200.00);
