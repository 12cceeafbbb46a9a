-- Example order database for the `lookup_order` and `list_orders` tools.
--
-- A small European online shop for coffee gear. Plain SQLite; `examples/data/orders_db.py`
-- builds `orders.sqlite` from this file (python -m examples.data.orders_db), and
-- rebuilds a cached copy by itself whenever this file changes. Money is in integer
-- cents (EUR); times are UTC, ISO 8601. Shipping is free from 60 EUR, otherwise 4.90
-- to continental EU countries, 7.90 to Ireland and 9.90 to Great Britain. The people,
-- addresses and tracking numbers are fictional.

PRAGMA foreign_keys = ON;

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE,
    city        TEXT NOT NULL,
    country     TEXT NOT NULL          -- ISO 3166-1 alpha-2
);

CREATE TABLE products (
    sku         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents > 0)
);

CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL REFERENCES customers (id),
    status          TEXT NOT NULL CHECK (status IN
                        ('pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')),
    placed_at       TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    currency        TEXT NOT NULL DEFAULT 'EUR',
    shipping_cents  INTEGER NOT NULL DEFAULT 0,
    carrier         TEXT,
    tracking_number TEXT
);

CREATE TABLE order_items (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    line             INTEGER NOT NULL,
    sku              TEXT NOT NULL REFERENCES products (sku),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL,   -- the price when the order was placed
    PRIMARY KEY (order_id, line)
);

CREATE VIEW order_totals AS
SELECT o.id AS order_id,
       COALESCE(SUM(i.quantity * i.unit_price_cents), 0) AS subtotal_cents,
       o.shipping_cents,
       COALESCE(SUM(i.quantity * i.unit_price_cents), 0) + o.shipping_cents AS total_cents,
       COALESCE(SUM(i.quantity), 0) AS item_count
FROM orders o LEFT JOIN order_items i ON i.order_id = o.id
GROUP BY o.id;

INSERT INTO customers (id, name, email, city, country) VALUES
    ('C001', 'Amélie Laurent',  'amelie.laurent@example.com', 'Lyon',     'FR'),
    ('C002', 'Jonas Becker',    'jonas.becker@example.com',   'Hamburg',  'DE'),
    ('C003', 'Priya Raman',     'priya.raman@example.org',    'London',   'GB'),
    ('C004', 'Mateo García',    'mateo.garcia@example.com',   'Valencia', 'ES'),
    ('C005', 'Sofia Rossi',     'sofia.rossi@example.net',    'Turin',    'IT'),
    ('C006', 'Daniel Okafor',   'daniel.okafor@example.com',  'Dublin',   'IE'),
    ('C007', 'Emma Lindqvist',  'emma.lindqvist@example.se',  'Uppsala',  'SE'),
    ('C008', 'Tomáš Novák',     'tomas.novak@example.cz',     'Brno',     'CZ');

INSERT INTO products (sku, name, price_cents) VALUES
    ('CB-ETH-250',  'Ethiopia Yirgacheffe, whole bean, 250 g',        1450),
    ('CB-COL-1K',   'Colombia Huila, whole bean, 1 kg',               3990),
    ('CB-DEC-250',  'Decaf Colombia (Swiss Water), whole bean, 250 g', 1290),
    ('GR-HND-01',   'Hand grinder, 38 mm conical steel burrs',        8900),
    ('KT-GOOSE-1L', 'Gooseneck kettle 1 L, temperature control',     11900),
    ('BR-V60-02',   'Pour-over dripper size 02, ceramic',             2490),
    ('FL-V60-100',  'Paper filters size 02, pack of 100',              690),
    ('SC-DIG-01',   'Digital brew scale with timer, 0.1 g',           4490),
    ('MG-STN-350',  'Stoneware mug, 350 ml',                          1800),
    ('FP-1L',       'French press, 1 L, stainless steel',             3490),
    ('DS-CLN-500',  'Descaling solution, 500 ml',                     1190),
    ('GC-25',       'Gift card, 25 EUR',                              2500);

INSERT INTO orders (id, customer_id, status, placed_at, updated_at, shipping_cents, carrier, tracking_number) VALUES
    ('ORD-1001', 'C001', 'delivered', '2026-09-02T08:14:00Z', '2026-09-05T13:40:00Z',   0, 'Colissimo',  '6A21904837215'),
    ('ORD-1002', 'C002', 'delivered', '2026-09-04T19:02:00Z', '2026-09-08T10:12:00Z', 490, 'DHL',        '00340434161094015902'),
    ('ORD-1003', 'C003', 'delivered', '2026-09-09T11:47:00Z', '2026-09-15T09:03:00Z', 990, 'Royal Mail', 'TT384910275GB'),
    ('ORD-1004', 'C004', 'refunded',  '2026-09-12T16:25:00Z', '2026-09-30T12:00:00Z',   0, 'Correos',    'PQ4BM20111940180146001A'),
    ('ORD-1005', 'C005', 'delivered', '2026-09-18T07:58:00Z', '2026-09-23T15:21:00Z',   0, 'BRT',        '060123456789012'),
    ('ORD-1006', 'C001', 'delivered', '2026-09-27T21:10:00Z', '2026-10-01T11:55:00Z', 490, 'Colissimo',  '6A21904930544'),
    ('ORD-1007', 'C006', 'cancelled', '2026-10-03T09:31:00Z', '2026-10-03T10:02:00Z', 790, NULL,         NULL),
    ('ORD-1008', 'C007', 'delivered', '2026-10-06T14:45:00Z', '2026-10-13T08:37:00Z',   0, 'PostNord',   '00370730253498721603'),
    ('ORD-1009', 'C008', 'delivered', '2026-10-11T17:20:00Z', '2026-10-16T14:09:00Z',   0, 'PPL',        '40083015672'),
    ('ORD-1010', 'C002', 'delivered', '2026-10-19T06:05:00Z', '2026-10-22T16:48:00Z',   0, 'DHL',        '00340434161094227151'),
    ('ORD-1011', 'C003', 'shipped',   '2026-11-02T12:30:00Z', '2026-11-04T07:15:00Z',   0, 'Royal Mail', 'TT384922631GB'),
    ('ORD-1012', 'C004', 'delivered', '2026-11-05T10:11:00Z', '2026-11-10T12:26:00Z', 490, 'Correos',    'PQ4BM20112115830146001X'),
    ('ORD-1013', 'C005', 'cancelled', '2026-11-08T20:44:00Z', '2026-11-09T08:00:00Z',   0, NULL,         NULL),
    ('ORD-1014', 'C006', 'shipped',   '2026-11-14T15:03:00Z', '2026-11-17T09:42:00Z',   0, 'An Post',    'CE502281734IE'),
    ('ORD-1015', 'C007', 'shipped',   '2026-11-18T08:27:00Z', '2026-11-20T13:30:00Z',   0, 'PostNord',   '00370730253512994418'),
    ('ORD-1016', 'C001', 'shipped',   '2026-11-20T18:52:00Z', '2026-11-22T10:05:00Z',   0, 'Colissimo',  '6A21905177301'),
    ('ORD-1017', 'C008', 'paid',      '2026-11-22T09:16:00Z', '2026-11-22T09:17:00Z', 490, NULL,         NULL),
    ('ORD-1018', 'C002', 'paid',      '2026-11-23T22:38:00Z', '2026-11-23T22:39:00Z',   0, NULL,         NULL),
    ('ORD-1019', 'C005', 'pending',   '2026-11-24T13:05:00Z', '2026-11-24T13:05:00Z',   0, NULL,         NULL),
    ('ORD-1020', 'C003', 'pending',   '2026-11-25T07:49:00Z', '2026-11-25T07:49:00Z', 990, NULL,         NULL);

INSERT INTO order_items (order_id, line, sku, quantity, unit_price_cents) VALUES
    ('ORD-1001', 1, 'GR-HND-01',   1,  8900),
    ('ORD-1001', 2, 'CB-ETH-250',  2,  1450),
    ('ORD-1002', 1, 'FL-V60-100',  3,   690),
    ('ORD-1002', 2, 'CB-DEC-250',  1,  1290),
    ('ORD-1003', 1, 'MG-STN-350',  2,  1800),
    ('ORD-1003', 2, 'CB-ETH-250',  1,  1450),
    ('ORD-1004', 1, 'KT-GOOSE-1L', 1, 11900),
    ('ORD-1005', 1, 'BR-V60-02',   1,  2490),
    ('ORD-1005', 2, 'FL-V60-100',  2,   690),
    ('ORD-1005', 3, 'SC-DIG-01',   1,  4490),
    ('ORD-1005', 4, 'CB-COL-1K',   1,  3990),
    ('ORD-1006', 1, 'CB-ETH-250',  2,  1450),
    ('ORD-1006', 2, 'DS-CLN-500',  1,  1190),
    ('ORD-1007', 1, 'FP-1L',       1,  3490),
    ('ORD-1008', 1, 'KT-GOOSE-1L', 1, 11900),
    ('ORD-1008', 2, 'BR-V60-02',   1,  2490),
    ('ORD-1009', 1, 'CB-COL-1K',   2,  3990),
    ('ORD-1009', 2, 'FP-1L',       1,  3490),
    ('ORD-1010', 1, 'SC-DIG-01',   1,  4490),
    ('ORD-1010', 2, 'CB-ETH-250',  3,  1450),
    ('ORD-1011', 1, 'GR-HND-01',   1,  8900),
    ('ORD-1011', 2, 'GC-25',       1,  2500),
    ('ORD-1012', 1, 'CB-DEC-250',  2,  1290),
    ('ORD-1012', 2, 'FL-V60-100',  1,   690),
    ('ORD-1013', 1, 'MG-STN-350',  4,  1800),
    ('ORD-1013', 2, 'CB-COL-1K',   1,  3990),
    ('ORD-1014', 1, 'BR-V60-02',   1,  2490),
    ('ORD-1014', 2, 'SC-DIG-01',   1,  4490),
    ('ORD-1014', 3, 'FL-V60-100',  1,   690),
    ('ORD-1015', 1, 'CB-ETH-250',  4,  1450),
    ('ORD-1015', 2, 'CB-DEC-250',  2,  1290),
    ('ORD-1016', 1, 'KT-GOOSE-1L', 1, 11900),
    ('ORD-1016', 2, 'MG-STN-350',  2,  1800),
    ('ORD-1017', 1, 'DS-CLN-500',  2,  1190),
    ('ORD-1017', 2, 'FL-V60-100',  1,   690),
    ('ORD-1018', 1, 'GR-HND-01',   1,  8900),
    ('ORD-1018', 2, 'SC-DIG-01',   1,  4490),
    ('ORD-1018', 3, 'CB-COL-1K',   1,  3990),
    ('ORD-1019', 1, 'FP-1L',       1,  3490),
    ('ORD-1019', 2, 'CB-ETH-250',  2,  1450),
    ('ORD-1020', 1, 'MG-STN-350',  1,  1800),
    ('ORD-1020', 2, 'CB-DEC-250',  1,  1290);
