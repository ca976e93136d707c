//! Reading the input file: a CSV with a name column, or one name per line.
//!
//! Each row keeps its line number in the file (what a person finds in an editor or a
//! spreadsheet: the first data row of a CSV with a header is row 2). The name is kept
//! exactly as written; validating it is the library's job (`AccountName`). A UTF-8 byte
//! order mark is skipped; a file that is not UTF-8 is refused as a whole, with the line.

use chime_onboard::wire::sha256_hex;

/// How to read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A CSV if the first line has the name column, otherwise one name per line.
    #[default]
    Auto,
    /// A CSV with a header line that has the name column.
    Csv,
    /// One name per line; empty lines are skipped.
    Lines,
}

/// One row of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRow {
    /// The line the row starts on, 1-based.
    pub row: u64,
    /// The name as written; `None` when a CSV record has no field in the name column.
    pub name: Option<String>,
}

/// The file, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// SHA-256 of the file's bytes (hex); the `RequestId`s derive from it.
    pub sha256: String,
    /// How the file was read in the end (never `Auto`).
    pub format: Format,
    pub rows: Vec<InputRow>,
}

/// Why a file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("line {line} is not valid UTF-8: save the file as UTF-8 and run again")]
    NotUtf8 { line: u64 },
    #[error("the first line has no column {column:?} (columns: {found}); pass --name-column with one of them")]
    NoNameColumn { column: String, found: String },
    #[error("line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("the file has no names")]
    Empty,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `content` as `format`, with `name_column` as the CSV header of the names.
pub fn parse(content: &[u8], format: Format, name_column: &str) -> Result<Input, InputError> {
    let sha256 = sha256_hex(content);
    let body = content.strip_prefix(BOM).unwrap_or(content);
    let format = match format {
        Format::Auto if header_has(body, name_column) => Format::Csv,
        Format::Auto => Format::Lines,
        other => other,
    };
    let rows = match format {
        Format::Csv => csv_rows(body, name_column)?,
        _ => line_rows(body)?,
    };
    if rows.is_empty() {
        return Err(InputError::Empty);
    }
    Ok(Input {
        sha256,
        format,
        rows,
    })
}

fn reader(body: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body)
}

fn header_has(body: &[u8], column: &str) -> bool {
    reader(body)
        .byte_headers()
        .map(|h| h.iter().any(|cell| trimmed(cell) == column.as_bytes()))
        .unwrap_or(false)
}

fn trimmed(cell: &[u8]) -> &[u8] {
    cell.trim_ascii()
}

fn csv_rows(body: &[u8], column: &str) -> Result<Vec<InputRow>, InputError> {
    let mut reader = reader(body);
    let headers = reader.byte_headers().map_err(|e| csv_error(&e, 1))?.clone();
    let Some(index) = headers.iter().position(|c| trimmed(c) == column.as_bytes()) else {
        return Err(InputError::NoNameColumn {
            column: column.to_owned(),
            found: headers
                .iter()
                .map(|c| format!("{:?}", String::from_utf8_lossy(trimmed(c))))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(&e, line)),
        }
        let row = record.position().map(|p| p.line()).unwrap_or(line);
        let name = match record.get(index) {
            None => None,
            Some(field) => Some(
                String::from_utf8(field.to_vec()).map_err(|_| InputError::NotUtf8 { line: row })?,
            ),
        };
        rows.push(InputRow { row, name });
    }
    Ok(rows)
}

fn csv_error(e: &csv::Error, line: u64) -> InputError {
    let line = e.position().map(|p| p.line()).unwrap_or(line);
    InputError::Csv {
        line,
        reason: e.to_string(),
    }
}

fn line_rows(body: &[u8]) -> Result<Vec<InputRow>, InputError> {
    let mut rows = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let row = i as u64 + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let name = std::str::from_utf8(line).map_err(|_| InputError::NotUtf8 { line: row })?;
        rows.push(InputRow {
            row,
            name: Some(name.to_owned()),
        });
    }
    Ok(rows)
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

    #[test]
    fn a_csv_with_the_name_column_is_read_by_header_with_line_numbers() {
        let file = "\u{feff}Owner,Name\nann,Acme\nbob,\"Widgets, Inc.\"\ncy\n";
        let input = parse(file.as_bytes(), Format::Auto, "Name").unwrap();
        assert_eq!(input.format, Format::Csv);
        assert_eq!(
            names(&input),
            vec![(2, Some("Acme")), (3, Some("Widgets, Inc.")), (4, None)]
        );
    }

    #[test]
    fn without_the_column_the_file_is_one_name_per_line() {
        let file = "Acme\r\n\r\n  Widgets, Inc.  \n\u{3000}\n";
        let input = parse(file.as_bytes(), Format::Auto, "Name").unwrap();
        assert_eq!(input.format, Format::Lines);
        assert_eq!(
            names(&input),
            vec![
                (1, Some("Acme")),
                (3, Some("  Widgets, Inc.  ")),
                (4, Some("\u{3000}"))
            ]
        );
    }

    #[test]
    fn an_explicit_csv_without_the_column_says_which_columns_there_are() {
        let err = parse(b"Account,Owner\nAcme,ann\n", Format::Csv, "Name").unwrap_err();
        assert_eq!(
            err,
            InputError::NoNameColumn {
                column: "Name".into(),
                found: "\"Account\", \"Owner\"".into()
            }
        );
        let custom = parse(b"Account,Owner\nAcme,ann\n", Format::Auto, "Account").unwrap();
        assert_eq!(names(&custom), vec![(2, Some("Acme"))]);
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        assert_eq!(
            parse(b"Acme\nW\xffidgets\n", Format::Lines, "Name"),
            Err(InputError::NotUtf8 { line: 2 })
        );
        assert_eq!(
            parse(b"Name\nAcme\n\"W\xffidgets\"\n", Format::Csv, "Name"),
            Err(InputError::NotUtf8 { line: 3 })
        );
        assert_eq!(parse(b"\n\n", Format::Auto, "Name"), Err(InputError::Empty));
        assert_eq!(
            parse(b"Name\n", Format::Auto, "Name"),
            Err(InputError::Empty)
        );
    }

    #[test]
    fn the_digest_covers_every_byte() {
        let a = parse(b"Acme\n", Format::Lines, "Name").unwrap();
        let b = parse(b"Acme\n\n", Format::Lines, "Name").unwrap();
        assert_eq!(a.rows, b.rows);
        assert_ne!(a.sha256, b.sha256);
    }
}
