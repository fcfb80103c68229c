//! What Postgres clients send besides queries, made to work on DuckDB: session statements answered
//! as no-ops, and the few spellings of psql's catalog queries that DuckDB's `pg_catalog` does not
//! know rewritten (the `OPERATOR(pg_catalog.~)` syntax, `COLLATE pg_catalog.default`,
//! `pg_get_userbyid`).

/// The command tag of a statement answered without running it, if it is one: transaction control
/// (the copy is read-only; there is nothing to commit) and session settings.
pub fn no_op(sql: &str) -> Option<&'static str> {
    let text = sql.trim().trim_end_matches(';').trim().to_ascii_uppercase();
    let first = text.split_whitespace().next().unwrap_or_default();
    match first {
        "BEGIN" | "START" => Some("BEGIN"),
        "COMMIT" | "END" => Some("COMMIT"),
        "ROLLBACK" | "ABORT" => Some("ROLLBACK"),
        "SET" => Some("SET"),
        "RESET" => Some("RESET"),
        "DISCARD" => Some("DISCARD ALL"),
        "DEALLOCATE" => Some("DEALLOCATE"),
        _ => None,
    }
}

/// Catalog relations Postgres has and DuckDB does not (policies, extended statistics,
/// publications, inheritance, triggers, rules, partitioning, foreign tables): nothing here has
/// any, so a query over one of them is answered with no rows, as psql's `\d` expects.
const ABSENT: [&str; 8] = [
    "pg_catalog.pg_policy",
    "pg_catalog.pg_statistic_ext",
    "pg_catalog.pg_publication",
    "pg_catalog.pg_inherits",
    "pg_catalog.pg_trigger",
    "pg_catalog.pg_rewrite",
    "pg_catalog.pg_partitioned_table",
    "pg_catalog.pg_foreign_table",
];

/// Whether `sql` reads a catalog relation DuckDB lacks (its answer: no rows).
pub fn reads_absent_catalog(sql: &str) -> bool {
    ABSENT.iter().any(|name| sql.contains(name))
}

/// `sql` with the Postgres-only spellings DuckDB lacks replaced by its own.
pub fn rewrite(sql: &str) -> String {
    let mut out = sql
        .replace("OPERATOR(pg_catalog.~)", "~")
        .replace("OPERATOR(pg_catalog.!~)", "!~")
        .replace(" COLLATE pg_catalog.default", "")
        .replace("::pg_catalog.regtype::pg_catalog.text", "::VARCHAR")
        .replace("::pg_catalog.text", "::VARCHAR")
        .replace("::pg_catalog.regclass", "")
        .replace("::pg_catalog.regtype", "")
        // Columns of psql's `\d` that DuckDB's pg_class lacks.
        .replace("c.relforcerowsecurity", "false");
    // The owner of every object is the appliance.
    out = replace_call(&out, "pg_catalog.pg_get_userbyid(", |_| "'coincast'".into());
    // DuckDB's pg_get_expr takes no `pretty` flag; it has no pg_get_indexdef (and its pg_index
    // is empty, so nothing reads the definition).
    out = replace_call(&out, "pg_catalog.pg_get_expr(", |args| {
        let args = args.strip_suffix(", true").unwrap_or(args);
        format!("pg_catalog.pg_get_expr({args})")
    });
    out = replace_call(&out, "pg_catalog.pg_get_indexdef(", |_| "''".into());
    out
}

/// Replaces every call `name(args)` (balanced parentheses) with `with(args)`.
fn replace_call(sql: &str, name: &str, with: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find(name) {
        out.push_str(&rest[..start]);
        let after = &rest[start + name.len()..];
        let mut depth = 1usize;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        match end {
            Some(i) => {
                out.push_str(&with(&after[..i]));
                rest = &after[i + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_statements_are_no_ops() {
        assert_eq!(no_op("BEGIN"), Some("BEGIN"));
        assert_eq!(no_op("  commit;"), Some("COMMIT"));
        assert_eq!(no_op("SET datestyle TO 'ISO'"), Some("SET"));
        assert_eq!(no_op("SELECT 1"), None);
        assert_eq!(no_op("settle"), None);
    }

    #[test]
    fn absent_catalogs_are_recognised() {
        assert!(reads_absent_catalog(
            "SELECT pol.polname FROM pg_catalog.pg_policy pol WHERE pol.polrelid = '1'"
        ));
        assert!(!reads_absent_catalog("SELECT * FROM pg_catalog.pg_class"));
    }

    #[test]
    fn psql_spellings_are_rewritten() {
        let q =
            "SELECT pg_catalog.pg_get_userbyid(c.relowner) AS owner FROM pg_catalog.pg_class c \
                 WHERE c.relname OPERATOR(pg_catalog.~) '^(x)$' COLLATE pg_catalog.default";
        assert_eq!(
            rewrite(q),
            "SELECT 'coincast' AS owner FROM pg_catalog.pg_class c WHERE c.relname ~ '^(x)$'"
        );
    }
}
