//! Reading the input file: the spreadsheet export people really have (a CSV with a name
//! column and others), or plain text with one name per line (DESIGN.md, "Bulk onboarding").
//!
//! - A CSV is recognised by its header: a column named `name` in any case (or the
//!   `--name-column`, also in any case), separated by `,`, `;` or a tab, with or without a
//!   UTF-8 BOM, CRLF or LF line ends, quoted fields. Its other columns are kept for the
//!   report.
//! - A file that looks like a CSV (two or more columns on every line of its start, for one
//!   of those separators) but has no such column is refused with the columns found: it is
//!   never read as one name per line, which would send `Acme,ann@example.com` as a name.
//! - Otherwise the file is one name per line; blank lines are skipped.
//!
//! Each row keeps its line number in the file (what a person finds in an editor; the first
//! data row of a CSV is row 2). Names are kept as written; checking them is the library's
//! job (`AccountName`, in `plan`). A file that is not UTF-8 is refused, with the line.

/// How to read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A CSV if the header has the name column; refused if it looks like a CSV without
    /// one; otherwise one name per line.
    #[default]
    Auto,
    /// A CSV whose header has the name column.
    Csv,
    /// One name per line; blank lines are skipped.
    Lines,
}

/// The name column when `--name-column` is not given (matched in any case).
pub const DEFAULT_NAME_COLUMN: &str = "name";

/// Separators a CSV may use (spreadsheets export `;` where `,` is the decimal comma).
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];
/// Lines read to decide whether a file without a name column looks like a CSV.
const SNIFF_RECORDS: usize = 50;

/// One row of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRow {
    /// The line the row starts on, 1-based.
    pub row: u64,
    /// The name as written; `None` when a CSV record has no field in the name column.
    pub name: Option<String>,
    /// The row's other columns, in the order of [`Input::columns`].
    pub extra: Vec<String>,
    /// Fields on a CSV row beyond the header's: an unquoted separator inside a cell,
    /// which shifts every cell after it, so no cell of the row can be trusted.
    pub surplus: usize,
}

/// The file, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// How the file was read in the end (never `Auto`).
    pub format: Format,
    /// The header of the other columns (empty for plain text).
    pub columns: Vec<String>,
    pub rows: Vec<InputRow>,
}

/// Why a file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("line {line} is not valid UTF-8: save the file as UTF-8 and run again")]
    NotUtf8 { line: u64 },
    #[error(
        "the header has no column {wanted:?} (in any case); columns found: {found}. Pass \
         --name-column with the one that holds the names, or --format lines if every line \
         is one name"
    )]
    NoNameColumn { wanted: String, found: String },
    #[error("several columns are named {wanted:?} ({found}); keep one, or rename the others")]
    AmbiguousNameColumn { wanted: String, found: String },
    #[error("line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("the file has no names")]
    Empty,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `content` as `format`; `name_column` is `--name-column` if given.
pub fn parse(
    content: &[u8],
    format: Format,
    name_column: Option<&str>,
) -> Result<Input, InputError> {
    let body = content.strip_prefix(BOM).unwrap_or(content);
    let wanted = name_column.unwrap_or(DEFAULT_NAME_COLUMN);
    let input = match format {
        Format::Lines => lines(body)?,
        Format::Csv => csv(body, delimiter_with(body, wanted).unwrap_or(b','), wanted)?,
        Format::Auto => match delimiter_with(body, wanted) {
            Some(delimiter) => csv(body, delimiter, wanted)?,
            // A chosen column that is not there, or a file shaped like a table: refused
            // with the columns found (csv() says so), never read line by line.
            None => match name_column.map(|_| b',').or_else(|| table_delimiter(body)) {
                Some(delimiter) => csv(body, delimiter, wanted)?,
                None => lines(body)?,
            },
        },
    };
    if input.rows.is_empty() {
        return Err(InputError::Empty);
    }
    Ok(input)
}

fn reader(body: &[u8], delimiter: u8, headers: bool) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(headers)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(body)
}

fn matches(cell: &[u8], wanted: &str) -> bool {
    cell.trim_ascii()
        .eq_ignore_ascii_case(wanted.trim().as_bytes())
}

/// The separator whose header line has the name column, if any.
fn delimiter_with(body: &[u8], wanted: &str) -> Option<u8> {
    DELIMITERS.into_iter().find(|&d| {
        reader(body, d, true)
            .byte_headers()
            .is_ok_and(|h| h.iter().any(|cell| matches(cell, wanted)))
    })
}

/// The separator for which the start of the file is a table: two or more fields on its
/// first line and the same number on every non-blank line read.
fn table_delimiter(body: &[u8]) -> Option<u8> {
    DELIMITERS.into_iter().find(|&d| {
        let mut widths = reader(body, d, false)
            .into_byte_records()
            .take(SNIFF_RECORDS)
            .map_while(Result::ok)
            .filter(|r| r.iter().any(|f| !f.trim_ascii().is_empty()))
            .map(|r| r.len());
        match widths.next() {
            Some(first) if first >= 2 => widths.all(|w| w == first),
            _ => false,
        }
    })
}

fn text(field: &[u8], line: u64) -> Result<String, InputError> {
    String::from_utf8(field.to_vec()).map_err(|_| InputError::NotUtf8 { line })
}

fn csv(body: &[u8], delimiter: u8, wanted: &str) -> Result<Input, InputError> {
    let mut reader = reader(body, delimiter, true);
    let headers = reader.byte_headers().map_err(|e| csv_error(&e, 1))?.clone();
    let found = || {
        headers
            .iter()
            .map(|c| format!("{:?}", String::from_utf8_lossy(c.trim_ascii())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let index = match headers
        .iter()
        .enumerate()
        .filter(|(_, c)| matches(c, wanted))
        .map(|(i, _)| i)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [index] => *index,
        [] => {
            return Err(InputError::NoNameColumn {
                wanted: wanted.to_owned(),
                found: found(),
            })
        }
        _ => {
            return Err(InputError::AmbiguousNameColumn {
                wanted: wanted.to_owned(),
                found: found(),
            })
        }
    };
    let columns = headers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, c)| text(c.trim_ascii(), 1))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(&e, line)),
        }
        if record.iter().all(<[u8]>::is_empty) {
            continue; // an empty row of a spreadsheet export (`,,,`); `"   "` is a bad name
        }
        // The line from the byte offset: with CRLF the csv crate starts a record at the
        // `\n` after the `\r` that ended the previous one, and counts its line one short.
        let row = record
            .position()
            .map(|p| line_at(body, p.byte()))
            .unwrap_or(line);
        let name = record.get(index).map(|f| text(f, row)).transpose()?;
        let extra = (0..headers.len().max(record.len()))
            .filter(|i| *i != index)
            .take(columns.len())
            .map(|i| text(record.get(i).unwrap_or_default(), row))
            .collect::<Result<Vec<_>, _>>()?;
        let surplus = record.len().saturating_sub(headers.len());
        rows.push(InputRow {
            row,
            name,
            extra,
            surplus,
        });
    }
    Ok(Input {
        format: Format::Csv,
        columns,
        rows,
    })
}

/// The 1-based line of a record that starts at byte `offset` of `body` (a `\n` there
/// belongs to the line ending before it: records never start with an empty line).
fn line_at(body: &[u8], offset: u64) -> u64 {
    let end = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(body.len());
    body[..end].iter().filter(|b| **b == b'\n').count() as u64 + 1
}

fn csv_error(e: &csv::Error, line: u64) -> InputError {
    let line = e.position().map(|p| p.line()).unwrap_or(line);
    InputError::Csv {
        line,
        reason: e.to_string(),
    }
}

fn lines(body: &[u8]) -> Result<Input, InputError> {
    let mut rows = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let row = i as u64 + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let name = std::str::from_utf8(line).map_err(|_| InputError::NotUtf8 { line: row })?;
        if name.trim().is_empty() {
            continue;
        }
        rows.push(InputRow {
            row,
            name: Some(name.to_owned()),
            extra: Vec::new(),
            surplus: 0,
        });
    }
    Ok(Input {
        format: Format::Lines,
        columns: Vec::new(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(input: &Input) -> Vec<(u64, Option<&str>)> {
        input
            .rows
            .iter()
            .map(|r| (r.row, r.name.as_deref()))
            .collect()
    }

    fn auto(file: &str) -> Result<Input, InputError> {
        parse(file.as_bytes(), Format::Auto, None)
    }

    #[test]
    fn a_lower_case_name_column_among_others_is_a_csv_and_keeps_the_others() {
        let input =
            auto("name,owner\nAcme Corp,ann@example.com\nGlobex,bob@example.com\n").unwrap();
        assert_eq!(input.format, Format::Csv);
        assert_eq!(input.columns, vec!["owner"]);
        assert_eq!(
            names(&input),
            vec![(2, Some("Acme Corp")), (3, Some("Globex"))]
        );
        assert_eq!(input.rows[0].extra, vec!["ann@example.com"]);
    }

    #[test]
    fn bom_crlf_quotes_and_short_rows_are_read_by_header() {
        let file = "\u{feff}Owner,NAME,Team\r\nann,Acme,x\r\nbob,\"Widgets, \"\"Inc.\"\"\",y\r\ncy\r\n,,\r\n";
        let input = auto(file).unwrap();
        assert_eq!(input.columns, vec!["Owner", "Team"]);
        let spaces = auto("Name\nAcme\n\"   \"\n").unwrap();
        assert_eq!(names(&spaces), vec![(2, Some("Acme")), (3, Some("   "))]);
        assert_eq!(
            names(&input),
            vec![(2, Some("Acme")), (3, Some("Widgets, \"Inc.\"")), (4, None)]
        );
        assert_eq!(input.rows[2].extra, vec!["cy", ""]);
    }

    #[test]
    fn semicolon_and_tab_separated_exports_are_csvs_too() {
        let semi = auto("Name;Owner\nAcme, Inc.;ann\n").unwrap();
        assert_eq!(names(&semi), vec![(2, Some("Acme, Inc."))]);
        assert_eq!(semi.rows[0].extra, vec!["ann"]);
        let tab = auto("Owner\tName\nann\tAcme\n").unwrap();
        assert_eq!(names(&tab), vec![(2, Some("Acme"))]);
    }

    #[test]
    fn a_table_without_the_name_column_is_refused_with_its_columns() {
        let err = auto("Account,Owner\nAcme,ann\nGlobex,bob\n").unwrap_err();
        assert_eq!(
            err,
            InputError::NoNameColumn {
                wanted: "name".into(),
                found: "\"Account\", \"Owner\"".into()
            }
        );
        assert!(err.to_string().contains("--name-column"));
        let semi = auto("Account;Owner\nAcme;ann\n").unwrap_err();
        assert!(matches!(semi, InputError::NoNameColumn { .. }), "{semi}");
        // A chosen column that is missing is refused even for a one-column file.
        let chosen = parse(b"Company\nAcme\n", Format::Auto, Some("Account")).unwrap_err();
        assert!(matches!(chosen, InputError::NoNameColumn { .. }));
        let custom = parse(b"Account,Owner\nAcme,ann\n", Format::Auto, Some("account")).unwrap();
        assert_eq!(names(&custom), vec![(2, Some("Acme"))]);
        let twice = auto("Name,name\nA,B\n").unwrap_err();
        assert!(matches!(twice, InputError::AmbiguousNameColumn { .. }));
    }

    #[test]
    fn plain_text_is_one_name_per_line_with_blank_lines_skipped() {
        let file = "Acme\r\n\r\n  Widgets, Inc.  \n\u{3000}\nGlobex";
        let input = auto(file).unwrap();
        assert_eq!(input.format, Format::Lines);
        assert_eq!(
            names(&input),
            vec![
                (1, Some("Acme")),
                (3, Some("  Widgets, Inc.  ")),
                (5, Some("Globex"))
            ]
        );
        // Commas on some lines only: a list of names, not a table.
        let list = auto("Widgets, Inc.\nAcme\n").unwrap();
        assert_eq!(list.format, Format::Lines);
        // --format lines reads a table-shaped file as names when that is what it is.
        let forced = parse(b"Smith, John\nDoe, Jane\n", Format::Lines, None).unwrap();
        assert_eq!(
            names(&forced),
            vec![(1, Some("Smith, John")), (2, Some("Doe, Jane"))]
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        assert_eq!(
            parse(b"Acme\nW\xffidgets\n", Format::Lines, None),
            Err(InputError::NotUtf8 { line: 2 })
        );
        assert_eq!(
            parse(b"Name\nAcme\n\"W\xffidgets\"\n", Format::Csv, None),
            Err(InputError::NotUtf8 { line: 3 })
        );
        assert_eq!(auto("\n\n"), Err(InputError::Empty));
        assert_eq!(auto("Name\n"), Err(InputError::Empty));
    }
}
