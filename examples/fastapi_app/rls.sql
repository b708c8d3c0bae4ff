-- Row-level security for the example app on the demo schema (customers, orders).
-- A request's end user is in the setting sqlgate.subject (set by the connector in the
-- request's transaction); a customer sees their own row and their own orders only.
-- Run as the tables' owner (the demo's admin can: it holds demo_owner).
SET ROLE demo_owner;
ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS customers_self ON customers;
CREATE POLICY customers_self ON customers
    USING (email = current_setting('sqlgate.subject', true));
DROP POLICY IF EXISTS orders_own ON orders;
CREATE POLICY orders_own ON orders
    USING (customer_id IN (SELECT id FROM customers WHERE email = current_setting('sqlgate.subject', true)));
RESET ROLE;
