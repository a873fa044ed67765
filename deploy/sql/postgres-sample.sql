-- Sample schema and data on the PostgreSQL primary, for `make demo` and
-- `docker compose up`. Run with psql as a superuser; the databases app,
-- orders_0 and orders_1 and the role app exist already. The tables belong to
-- role app, so that clients connecting as app (through the proxy) may write.
\set ON_ERROR_STOP 1

-- The unsharded database: cluster "pg" in config.toml.
\connect app
SET ROLE app;
CREATE TABLE accounts (
    id         bigserial PRIMARY KEY,
    owner      text NOT NULL,
    balance    numeric(12, 2) NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO accounts (owner, balance) VALUES
    ('alice', 100.00), ('bob', 250.50), ('carol', 75.00), ('dave', 0.00), ('erin', 1200.00);

-- The two shards of the sharded cluster "orders" (sharding key customer_id;
-- customers by id). They start empty: rows belong on the shard the proxy's
-- shard map picks, so they go in through the proxy once it serves sharded
-- clusters (issue 6).
\connect orders_0
SET ROLE app;
CREATE TABLE customers (
    id   bigint PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL,
    item        text NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_id ON orders (customer_id);

\connect orders_1
SET ROLE app;
CREATE TABLE customers (
    id   bigint PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL,
    item        text NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_id ON orders (customer_id);
