//! Tables as docker prints them (`ps`, `top`, `stats`, `images`, `rootfs ls`): docker's
//! formatter writes through Go's text/tabwriter with a minimum cell width of 10, a padding of 3
//! and blanks, so every column is as wide as its widest cell plus 3 (at least 10), and the last
//! column is not padded. A long name or command widens its column instead of running into the
//! next one.

/// A column's minimum width (tabwriter's minwidth, docker's 10).
pub(crate) const MIN_WIDTH: usize = 10;
/// Blanks after a column's widest cell (tabwriter's padding, docker's 3).
pub(crate) const PADDING: usize = 3;

/// The rows (the header first) laid out in columns sized from their content, one line each
/// ending in `\n`, without trailing blanks. Rows may have different lengths: a column is as wide
/// as the widest of the cells that are not the last of their row.
pub(crate) fn render(rows: &[Vec<String>]) -> String {
    let width = |c: &str| c.chars().count();
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        // The last cell of a row is not part of a column (tabwriter: no terminating tab).
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            if widths.len() <= i {
                widths.resize(i + 1, MIN_WIDTH);
            }
            widths[i] = widths[i].max(width(c) + PADDING);
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.extend(std::iter::repeat_n(' ', widths[i] - width(c)));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Rows being collected under a header, printed with [`render`].
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text ([`render`]).
    pub(crate) fn render(&self) -> String {
        render(&self.rows)
    }

    /// Prints the table on stdout (a closed pipe ends gocker quietly, as everywhere).
    pub(crate) fn print(&self) {
        use std::io::Write;
        crate::failure::wrote(std::io::stdout().write_all(self.render().as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter()
            .map(|c| c.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn short_cells_get_the_minimum_width() {
        let t = render(&rows(&[&["A", "B", "C"], &["1", "2", "3"]]));
        assert_eq!(t, "A         B         C\n1         2         3\n");
    }

    #[test]
    fn a_long_cell_widens_its_column_by_the_padding() {
        let long = "a-very-long-container-name";
        let t = render(&rows(&[&["NAME", "STATUS"], &[long, "running"]]));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            format!("NAME{}STATUS", " ".repeat(long.len() + 3 - 4))
        );
        assert_eq!(lines[1], format!("{long}   running"));
        // The second column starts at the same offset on every line.
        assert_eq!(lines[0].find("STATUS"), lines[1].find("running"));
    }

    #[test]
    fn the_last_column_is_not_padded_nor_limited() {
        let cmd = "sh -c 'while true; do sleep 1; done' with a long tail of arguments";
        let t = render(&rows(&[&["ID", "COMMAND"], &["abc", cmd], &["d", ""]]));
        assert_eq!(
            t,
            format!("ID        COMMAND\nabc       {cmd}\nd\n"),
            "no trailing blanks, the last cell as it is"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let t = render(&rows(&[&["NAME", "X"], &["élève-ünïcode", "1"]]));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].chars().position(|c| c == 'X'),
            lines[1].chars().position(|c| c == '1')
        );
        assert_eq!(lines[1], "élève-ünïcode   1");
    }

    #[test]
    fn ragged_rows_and_the_table_type() {
        let mut t = Table::new(&["UID", "PID", "CMD"]);
        t.row(vec!["1000000000".into(), "7".into(), "sleep 100".into()]);
        t.row(vec!["0".into()]);
        assert_eq!(
            t.render(),
            "UID          PID       CMD\n1000000000   7         sleep 100\n0\n"
        );
    }
}
