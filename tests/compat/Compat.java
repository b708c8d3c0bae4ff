// pgjdbc through the gateway: every scenario of tests/compat, one JSON line each (compiled and run by test_pgjdbc.py).
import java.io.StringReader;
import java.io.StringWriter;
import java.net.URI;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.PGStatement;
import org.postgresql.copy.CopyManager;

public final class Compat {
    interface Body {
        void run(Map<String, Object> details) throws Exception;
    }

    static final Map<String, Object> notified = new LinkedHashMap<>();

    public static void main(String[] args) throws Exception {
        scenario("connect", d -> {
            try (Connection c = connect("")) {
                d.put("version", c.getMetaData().getDriverVersion());
                check(one(c, "SELECT current_user") != null, "no row");
            }
        });
        try (Connection c = connect("")) {
            scenario("simple", d -> simple(d));
            scenario("extended", d -> extended(c));
            scenario("prepared", d -> prepared(c, d));
            scenario("copy", d -> copy(c, d));
            scenario("notify", d -> notify(c, d));
            scenario("notify_pid", d -> {
                d.putAll(notified);
                check(notified.get("notification_pid").equals(notified.get("backend_pid"))
                        && notified.get("backend_pid").equals(notified.get("driver_pid")), "pids differ: " + notified);
            });
            scenario("transaction", d -> transaction(c));
            scenario("savepoint", d -> savepoint(c));
            scenario("cancel", d -> cancel(c, d));
        }
        scenario("terminate", d -> terminate(d));
    }

    static Connection connect(String extra) throws SQLException {
        String url = "jdbc:postgresql://" + System.getenv("GW_HOST") + ":" + System.getenv("GW_PORT") + "/"
                + System.getenv("GW_DB") + "?sslmode=disable&prepareThreshold=5" + extra;
        Properties props = new Properties();
        props.setProperty("user", System.getenv("GW_USER"));
        props.setProperty("password", System.getenv("GW_PASSWORD"));
        return DriverManager.getConnection(url, props);
    }

    static Connection admin() throws Exception {
        URI uri = new URI(System.getenv("ADMIN_URL"));
        String[] auth = uri.getUserInfo().split(":", 2);
        Properties props = new Properties();
        props.setProperty("user", auth[0]);
        if (auth.length > 1) {
            props.setProperty("password", auth[1]);
        }
        return DriverManager.getConnection("jdbc:postgresql://" + uri.getHost() + ":" + uri.getPort() + uri.getPath()
                + "?sslmode=disable", props);
    }

    static String one(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
            return r.next() ? r.getString(1) : null;
        }
    }

    static void simple(Map<String, Object> d) throws Exception {
        try (Connection c = connect("&preferQueryMode=simple"); Statement s = c.createStatement()) {
            check(s.execute("SELECT 1 AS a; SELECT 'two' AS b"), "no result");
            try (ResultSet r = s.getResultSet()) {
                check(r.next() && r.getInt(1) == 1, "first result");
            }
            check(s.getMoreResults(), "no second result");
            try (ResultSet r = s.getResultSet()) {
                check(r.next() && "two".equals(r.getString(1)), "second result");
            }
            d.put("mode", "preferQueryMode=simple");
        }
    }

    static void extended(Connection c) throws Exception {
        try (PreparedStatement p = c.prepareStatement("SELECT name, ?::int + 1 FROM customers WHERE id = ?")) {
            p.setInt(1, 41);
            p.setInt(2, 5);
            try (ResultSet r = p.executeQuery()) {
                check(r.next() && r.getString(1).endsWith(" 5") && r.getInt(2) == 42, "wrong row");
            }
        }
    }

    static void prepared(Connection c, Map<String, Object> d) throws Exception {
        try (PreparedStatement p = c.prepareStatement("SELECT id, customer_id FROM orders WHERE id = ?")) {
            for (int i = 1; i <= 50; i++) {
                p.setInt(1, i);
                try (ResultSet r = p.executeQuery()) {
                    check(r.next() && r.getInt(1) == i, "run " + i);
                }
            }
            check(p.unwrap(PGStatement.class).isUseServerPrepare(), "not server-prepared after 50 runs");
        }
        int named = Integer.parseInt(one(c, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'S\\_%'"));
        check(named >= 1, "no server-side prepared statement");
        d.put("executions", 50);
        d.put("server_prepared", named);
    }

    static void copy(Connection c, Map<String, Object> d) throws Exception {
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TEMP TABLE copied (a int, b text)");
        }
        StringBuilder in = new StringBuilder();
        for (int i = 0; i < 1000; i++) {
            in.append(i).append("\trow ").append(i).append('\n');
        }
        CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
        long loaded = copy.copyIn("COPY copied FROM STDIN", new StringReader(in.toString()));
        StringWriter out = new StringWriter();
        long read = copy.copyOut("COPY copied TO STDOUT", out);
        check(loaded == 1000 && read == 1000 && out.toString().equals(in.toString()), loaded + " in, " + read + " out");
        d.put("rows_in", loaded);
        d.put("rows_out", read);
    }

    static void notify(Connection c, Map<String, Object> d) throws Exception {
        try (Statement s = c.createStatement()) {
            s.execute("LISTEN compat");
            s.execute("NOTIFY compat, 'hello'");
        }
        PGConnection pg = c.unwrap(PGConnection.class);
        PGNotification[] got = pg.getNotifications(5000);
        check(got != null && got.length == 1 && "hello".equals(got[0].getParameter()), "no notification");
        notified.put("notification_pid", got[0].getPID());
        notified.put("backend_pid", Integer.parseInt(one(c, "SELECT pg_backend_pid()")));
        notified.put("driver_pid", pg.getBackendPID());
        d.putAll(notified);
    }

    static void transaction(Connection c) throws Exception {
        c.setAutoCommit(false);
        try {
            check("22012".equals(failure(c, "SELECT 1 / 0")), "division by zero not reported");
            check("25P02".equals(failure(c, "SELECT 1")), "transaction not in error");
            c.rollback();
            check("2".equals(one(c, "SELECT 2")), "not usable after rollback");
        } finally {
            c.rollback();
            c.setAutoCommit(true);
        }
    }

    static void savepoint(Connection c) throws Exception {
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TEMP TABLE saved (a int)");
            c.setAutoCommit(false);
            s.execute("INSERT INTO saved VALUES (1)");
            Savepoint sp = c.setSavepoint();
            check("22012".equals(failure(c, "INSERT INTO saved VALUES (1 / 0)")), "no error");
            c.rollback(sp);
            s.execute("INSERT INTO saved VALUES (2)");
            c.commit();
        } finally {
            c.setAutoCommit(true);
        }
        String got = one(c, "SELECT array_agg(a ORDER BY a)::text FROM saved");
        check("{1,2}".equals(got), got);
    }

    static void cancel(Connection c, Map<String, Object> d) throws Exception {
        try (Statement s = c.createStatement()) {
            Thread canceller = new Thread(() -> {
                try {
                    Thread.sleep(500);
                    s.cancel();
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            long started = System.nanoTime();
            canceller.start();
            String state = null;
            try {
                s.executeQuery("SELECT pg_sleep(30)");
            } catch (SQLException e) {
                state = e.getSQLState();
            }
            canceller.join();
            d.put("seconds", (System.nanoTime() - started) / 1e9);
            check("57014".equals(state), "sqlstate " + state);
            check("3".equals(one(c, "SELECT 3")), "not usable after cancel");
        }
    }

    static void terminate(Map<String, Object> d) throws Exception {
        try (Connection victim = connect("")) {
            String pid = one(victim, "SELECT pg_backend_pid()");
            try (Connection a = admin()) {
                one(a, "SELECT pg_terminate_backend(" + Integer.parseInt(pid) + ")");
            }
            Thread.sleep(500);
            String state = failure(victim, "SELECT 1");
            d.put("sqlstate", state);
            check("57P01".equals(state), "sqlstate " + state);
        }
    }

    static String failure(Connection c, String sql) {
        try (Statement s = c.createStatement()) {
            s.execute(sql);
            return null;
        } catch (SQLException e) {
            return e.getSQLState();
        }
    }

    static void check(boolean condition, String message) {
        if (!condition) {
            throw new IllegalStateException(message);
        }
    }

    static void scenario(String name, Body body) {
        Map<String, Object> record = new LinkedHashMap<>();
        record.put("scenario", name);
        record.put("ok", true);
        try {
            body.run(record);
        } catch (Throwable e) {
            record.put("ok", false);
            record.put("error", e.toString());
        }
        System.out.println(json(record));
    }

    static String json(Map<String, Object> record) {
        StringBuilder out = new StringBuilder("{");
        for (Map.Entry<String, Object> e : record.entrySet()) {
            if (out.length() > 1) {
                out.append(',');
            }
            out.append(quote(e.getKey())).append(':');
            Object v = e.getValue();
            out.append(v instanceof Number || v instanceof Boolean ? v.toString() : v == null ? "null" : quote(v.toString()));
        }
        return out.append('}').toString();
    }

    static String quote(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            if (ch == '"' || ch == '\\') {
                out.append('\\').append(ch);
            } else if (ch < 0x20) {
                out.append(String.format("\\u%04x", (int) ch));
            } else {
                out.append(ch);
            }
        }
        return out.append('"').toString();
    }
}
