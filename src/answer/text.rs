//! Answers as text: CSV for spreadsheets and scripts, an aligned table for
//! terminals (the CLI's `--format csv|table`).
//!
//! CSV has one row per x value and series (`x_value,series_label,value`,
//! plus one column per label field); the table has one row per x value and
//! one column per series. Flow answers list one transition per row.

use std::fmt::Write;

use super::{Answer, FlowAnswer, SeriesAnswer};
use crate::error::{needs_escape, push_escaped};

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_line(out: &mut String, fields: &[&str]) {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&line.join(","));
    out.push('\n');
}

/// A table cell: labels and ids come from the data, and a newline, tab or
/// escape sequence in one would break the layout or the terminal, so
/// control characters are written escaped (`\n`, `\t`, `\u{1b}`).
fn table_cell(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    s.chars().for_each(|c| push_escaped(&mut out, c));
    out
}

/// Lays out rows as columns padded to their widest cell.
fn aligned(rows: &[Vec<String>], right_from: usize) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|s| table_cell(s)).collect())
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if c >= right_from {
                    format!("{s:>w$}", w = widths[c])
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

impl SeriesAnswer {
    /// CSV, one row per x value and series.
    pub fn to_csv(&self) -> String {
        let data = &self.data;
        let fields: Vec<&String> = data
            .series
            .first()
            .map(|s| s.labels.keys().collect())
            .unwrap_or_default();
        let mut out = String::new();
        let mut header = vec!["x_value", "series_label"];
        header.extend(fields.iter().map(|f| f.as_str()));
        header.push("value");
        csv_line(&mut out, &header);
        for (series, label) in data.series.iter().zip(&data.series_labels) {
            for (x, v) in data.x_values.iter().zip(&series.values) {
                let v = v.to_string();
                let mut row = vec![x.as_str(), label.as_str()];
                row.extend(
                    fields
                        .iter()
                        .map(|f| series.labels.get(*f).map_or("", String::as_str)),
                );
                row.push(&v);
                csv_line(&mut out, &row);
            }
        }
        out
    }

    /// An aligned table: one row per x value, one column per series, and
    /// `sum` / `mean` / `min` / `max` rows at the end.
    pub fn to_table(&self) -> String {
        let data = &self.data;
        let mut rows = vec![std::iter::once("x_value".to_string())
            .chain(data.series_labels.iter().cloned())
            .collect::<Vec<_>>()];
        for (i, x) in data.x_values.iter().enumerate() {
            let mut row = vec![x.clone()];
            row.extend(data.series.iter().map(|s| s.values[i].to_string()));
            rows.push(row);
        }
        type Pick = fn(&super::Series) -> u64;
        let summaries: [(&str, Pick); 4] = [
            ("sum", |s| s.sum),
            ("mean", |s| s.mean),
            ("min", |s| s.min),
            ("max", |s| s.max),
        ];
        for (name, pick) in summaries {
            let mut row = vec![name.to_string()];
            row.extend(data.series.iter().map(|s| pick(s).to_string()));
            rows.push(row);
        }
        aligned(&rows, 1)
    }
}

impl FlowAnswer {
    const HEADER: [&'static str; 7] = [
        "depth",
        "timestamp",
        "id",
        "from_step_id",
        "from_step_type",
        "to_step_id",
        "to_step_type",
    ];

    fn rows(&self) -> Vec<Vec<String>> {
        self.transitions
            .iter()
            .map(|t| {
                vec![
                    t.depth.to_string(),
                    t.timestamp.clone(),
                    t.id.clone(),
                    t.from_step.id.clone(),
                    t.from_step.step_type.clone(),
                    t.to_step.id.clone(),
                    t.to_step.step_type.clone(),
                ]
            })
            .collect()
    }

    /// CSV, one row per transition.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        csv_line(&mut out, &Self::HEADER);
        for row in self.rows() {
            let row: Vec<&str> = row.iter().map(String::as_str).collect();
            csv_line(&mut out, &row);
        }
        out
    }

    /// An aligned table, one row per transition, under a title line.
    pub fn to_table(&self) -> String {
        let mut rows = vec![Self::HEADER.iter().map(|s| s.to_string()).collect()];
        rows.extend(self.rows());
        format!(
            "bot_id: {}  conversation_id: {}  user_id: {}\n{}",
            self.bot_id,
            self.conversation_id,
            self.user_id,
            aligned(&rows, usize::MAX)
        )
    }
}

impl Answer {
    /// CSV rendering.
    pub fn to_csv(&self) -> String {
        match self {
            Answer::Series(s) => s.to_csv(),
            Answer::Flow(f) => f.to_csv(),
        }
    }

    /// Aligned table rendering.
    pub fn to_table(&self) -> String {
        match self {
            Answer::Series(s) => s.to_table(),
            Answer::Flow(f) => f.to_table(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Series, SeriesData};
    use super::*;

    fn answer() -> SeriesAnswer {
        SeriesAnswer {
            data: SeriesData {
                series: vec![
                    Series::new(vec![1, 20], [("language".into(), "en".into())].into()),
                    Series::new(vec![3, 0], [("language".into(), "a,b".into())].into()),
                ],
                series_labels: vec!["en".into(), "a,b".into()],
                x_values: vec!["2024-03-01T00:00:00Z".into(), "2024-03-02T00:00:00Z".into()],
            },
        }
    }

    #[test]
    fn csv_has_a_row_per_x_and_series_and_quotes() {
        let csv = answer().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "x_value,series_label,language,value");
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[3], "2024-03-01T00:00:00Z,\"a,b\",\"a,b\",3");
    }

    #[test]
    fn table_aligns_columns() {
        let table = answer().to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "x_value               en  a,b");
        assert_eq!(lines[2], "2024-03-02T00:00:00Z  20    0");
        assert_eq!(lines[3], "sum                   21    3");
    }

    #[test]
    fn table_escapes_line_breaks_tabs_and_escapes_in_labels() {
        let mut a = answer();
        a.data.series_labels = vec!["e\nn".into(), "a\tb\u{1b}[31m".into()];
        let table = a.to_table();
        assert_eq!(table.lines().count(), 7, "{table}");
        assert!(!table.contains(['\t', '\u{1b}']), "{table:?}");
        let header = table.lines().next().unwrap();
        assert_eq!(header, "x_value               e\\nn  a\\tb\\u{1b}[31m");
    }
}
