//! The pages ([`super::dialogs`]) as Windows Installer's archive files (.idt), for
//! msitools' `msibuild MSI -i FILE.idt`, and as SQL `INSERT`s for `msibuild MSI -q` into
//! the tables wixl already wrote (Property, InstallUISequence, CustomAction: an import
//! would replace them). `msi ui-tables DIR` writes them; scripts/build-msi applies them.
//!
//! An .idt file is three header lines (the column names, their types, the table and
//! its keys) and one tab-separated line per row; a stream column (the Binary table's
//! Data) names a file in a folder named after the table. Tabs and line ends cannot be
//! in a value, nor a `'` in a value of an INSERT (MSI's SQL has no escape for it): the
//! writer refuses them rather than write a table Windows Installer reads otherwise.

use std::fmt::Write as _;
use std::path::Path;

use super::dialogs::{self, Ui};

/// A value that cannot go into a table as it is.
#[derive(Debug, thiserror::Error)]
pub enum IdtError {
    /// A tab or a line end in a value.
    #[error(
        "{table}: the value {value:?} holds a tab or a line end, which an .idt file cannot carry; write it without"
    )]
    Separator { table: &'static str, value: String },
    /// A `'` in a value of an INSERT.
    #[error(
        "{table}: the value {value:?} holds a ', which MSI's SQL cannot quote; write it without"
    )]
    Quote { table: &'static str, value: String },
    /// A file could not be written or copied.
    #[error("{path}: {source}; check that the folder can be written")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One .idt table: its header and rows.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, &'static str)],
    keys: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

impl Table {
    fn text(&self) -> Result<String, IdtError> {
        let mut s = String::new();
        let names: Vec<&str> = self.columns.iter().map(|c| c.0).collect();
        let types: Vec<&str> = self.columns.iter().map(|c| c.1).collect();
        let _ = writeln!(s, "{}", names.join("\t"));
        let _ = writeln!(s, "{}", types.join("\t"));
        let _ = writeln!(s, "{}\t{}", self.name, self.keys.join("\t"));
        for row in &self.rows {
            for v in row {
                if v.contains(['\t', '\n', '\r']) {
                    return Err(IdtError::Separator {
                        table: self.name,
                        value: v.clone(),
                    });
                }
            }
            let _ = writeln!(s, "{}", row.join("\t"));
        }
        Ok(s)
    }
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The new tables of `ui`, in the order to import them.
fn tables(ui: &Ui, assets: &[String]) -> Vec<Table> {
    let dialogs = Table {
        name: "Dialog",
        columns: &[
            ("Dialog", "s72"),
            ("HCentering", "i2"),
            ("VCentering", "i2"),
            ("Width", "i2"),
            ("Height", "i2"),
            ("Attributes", "I4"),
            ("Title", "L128"),
            ("Control_First", "s50"),
            ("Control_Default", "S50"),
            ("Control_Cancel", "S50"),
        ],
        keys: &["Dialog"],
        rows: ui
            .dialogs
            .iter()
            .map(|d| {
                vec![
                    d.name.to_owned(),
                    "50".to_owned(),
                    "50".to_owned(),
                    d.width.to_string(),
                    d.height.to_string(),
                    d.attributes.to_string(),
                    d.title.to_owned(),
                    d.first.to_owned(),
                    d.default.to_owned(),
                    d.cancel.to_owned(),
                ]
            })
            .collect(),
    };
    let controls = Table {
        name: "Control",
        columns: &[
            ("Dialog_", "s72"),
            ("Control", "s50"),
            ("Type", "s20"),
            ("X", "i2"),
            ("Y", "i2"),
            ("Width", "i2"),
            ("Height", "i2"),
            ("Attributes", "I4"),
            ("Property", "S72"),
            ("Text", "L0"),
            ("Control_Next", "S50"),
            ("Help", "L50"),
        ],
        keys: &["Dialog_", "Control"],
        rows: ui
            .dialogs
            .iter()
            .flat_map(|d| {
                d.controls.iter().map(|c| {
                    vec![
                        d.name.to_owned(),
                        c.name.to_owned(),
                        c.kind.to_owned(),
                        c.x.to_string(),
                        c.y.to_string(),
                        c.width.to_string(),
                        c.height.to_string(),
                        c.attributes.to_string(),
                        opt(c.property),
                        opt(c.text.as_deref()),
                        opt(c.next),
                        String::new(),
                    ]
                })
            })
            .collect(),
    };
    let events = Table {
        name: "ControlEvent",
        columns: &[
            ("Dialog_", "s72"),
            ("Control_", "s50"),
            ("Event", "s50"),
            ("Argument", "s255"),
            ("Condition", "S255"),
            ("Ordering", "I2"),
        ],
        keys: &["Dialog_", "Control_", "Event", "Argument", "Condition"],
        rows: ui
            .events
            .iter()
            .map(|e| {
                vec![
                    e.dialog.to_owned(),
                    e.control.to_owned(),
                    e.event.clone(),
                    e.argument.clone(),
                    e.condition.clone(),
                    e.order.to_string(),
                ]
            })
            .collect(),
    };
    let conditions = Table {
        name: "ControlCondition",
        columns: &[
            ("Dialog_", "s72"),
            ("Control_", "s50"),
            ("Action", "s50"),
            ("Condition", "s255"),
        ],
        keys: &["Dialog_", "Control_", "Action", "Condition"],
        rows: ui
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.dialog.to_owned(),
                    c.control.to_owned(),
                    c.action.to_owned(),
                    c.condition.to_owned(),
                ]
            })
            .collect(),
    };
    let mappings = Table {
        name: "EventMapping",
        columns: &[
            ("Dialog_", "s72"),
            ("Control_", "s50"),
            ("Event", "s50"),
            ("Attribute", "s50"),
        ],
        keys: &["Dialog_", "Control_", "Event"],
        rows: ui
            .mappings
            .iter()
            .map(|m| {
                vec![
                    m.dialog.to_owned(),
                    m.control.to_owned(),
                    m.event.to_owned(),
                    m.attribute.to_owned(),
                ]
            })
            .collect(),
    };
    let styles = Table {
        name: "TextStyle",
        columns: &[
            ("TextStyle", "s72"),
            ("FaceName", "s32"),
            ("Size", "i2"),
            ("Color", "I4"),
            ("StyleBits", "I2"),
        ],
        keys: &["TextStyle"],
        rows: ui
            .styles
            .iter()
            .map(|s| {
                vec![
                    s.name.to_owned(),
                    s.face.to_owned(),
                    s.size.to_string(),
                    String::new(),
                    if s.bold { "1" } else { "0" }.to_owned(),
                ]
            })
            .collect(),
    };
    let checkboxes = Table {
        name: "CheckBox",
        columns: &[("Property", "s72"), ("Value", "S64")],
        keys: &["Property"],
        rows: ui
            .checkboxes
            .iter()
            .map(|(p, v)| vec![(*p).to_owned(), (*v).to_owned()])
            .collect(),
    };
    let action_texts = Table {
        name: "ActionText",
        columns: &[("Action", "s72"), ("Description", "L0"), ("Template", "L0")],
        keys: &["Action"],
        rows: ui
            .action_texts
            .iter()
            .map(|(a, d)| vec![(*a).to_owned(), (*d).to_owned(), String::new()])
            .collect(),
    };
    let binary = Table {
        name: "Binary",
        columns: &[("Name", "s72"), ("Data", "v0")],
        keys: &["Name"],
        rows: [
            dialogs::CA_BINARY.to_owned(),
            dialogs::EXE_BINARY.to_owned(),
        ]
        .into_iter()
        .chain(
            assets
                .iter()
                .map(|a| format!("{}{a}", dialogs::ASSET_BINARY)),
        )
        .map(|n| vec![n.clone(), format!("{n}.ibd")])
        .collect(),
    };
    vec![
        dialogs,
        controls,
        events,
        conditions,
        mappings,
        styles,
        checkboxes,
        action_texts,
        binary,
    ]
}

fn quoted(table: &'static str, v: &str) -> Result<String, IdtError> {
    if v.contains('\'') {
        return Err(IdtError::Quote {
            table,
            value: v.to_owned(),
        });
    }
    if v.contains(['\t', '\n', '\r']) {
        return Err(IdtError::Separator {
            table,
            value: v.to_owned(),
        });
    }
    Ok(format!("'{v}'"))
}

/// The rows for the tables wixl wrote, as `INSERT` statements, one per line.
pub fn inserts(ui: &Ui) -> Result<Vec<String>, IdtError> {
    let mut q = Vec::new();
    for (p, v) in &ui.properties {
        q.push(format!(
            "INSERT INTO `Property` (`Property`, `Value`) VALUES ({}, {})",
            quoted("Property", p)?,
            quoted("Property", v)?
        ));
    }
    for (action, condition, seq) in &ui.ui_sequence {
        q.push(if condition.is_empty() {
            format!(
                "INSERT INTO `InstallUISequence` (`Action`, `Sequence`) VALUES ({}, {seq})",
                quoted("InstallUISequence", action)?
            )
        } else {
            format!(
                "INSERT INTO `InstallUISequence` (`Action`, `Condition`, `Sequence`) VALUES ({}, {}, {seq})",
                quoted("InstallUISequence", action)?,
                quoted("InstallUISequence", condition)?
            )
        });
    }
    // Type 1: a DLL from the Binary table, run synchronously.
    q.push(format!(
        "INSERT INTO `CustomAction` (`Action`, `Type`, `Source`, `Target`) VALUES ({}, 1, {}, {})",
        quoted("CustomAction", dialogs::CUSTOM_ACTION)?,
        quoted("CustomAction", dialogs::CA_BINARY)?,
        quoted("CustomAction", dialogs::CUSTOM_ACTION)?
    ));
    Ok(q)
}

/// Writes the tables into `dir` (created): `NAME.idt` for each new table (with
/// `Binary/` holding copies of `dll`, `exe` and the `assets`, each named
/// `ColinuxSetupAsset.FILE`), `inserts.sql` with one statement per line, and
/// `tables.txt` listing the .idt files in import order.
pub fn write(
    dir: &Path,
    dll: &Path,
    exe: &Path,
    assets: &[std::path::PathBuf],
) -> Result<(), IdtError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| IdtError::Io {
            path: path.clone(),
            source,
        }
    };
    let ui = dialogs::ui();
    let bin = dir.join("Binary");
    std::fs::create_dir_all(&bin).map_err(io(&bin))?;
    let mut names = Vec::new();
    let mut binaries = vec![
        (dialogs::CA_BINARY.to_owned(), dll.to_owned()),
        (dialogs::EXE_BINARY.to_owned(), exe.to_owned()),
    ];
    for a in assets {
        // A Binary row's name is an identifier: letters, digits, `_` and `.`.
        let name = a
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| {
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            })
            .ok_or_else(|| IdtError::Io {
                path: a.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "an asset's file name must be letters, digits, _ and . only",
                ),
            })?;
        binaries.push((format!("{}{name}", dialogs::ASSET_BINARY), a.clone()));
        names.push(name);
    }
    let mut order = String::new();
    for t in tables(&ui, &names) {
        let file = dir.join(format!("{}.idt", t.name));
        std::fs::write(&file, t.text()?).map_err(io(&file))?;
        let _ = writeln!(order, "{}.idt", t.name);
    }
    for (name, from) in &binaries {
        let to = bin.join(format!("{name}.ibd"));
        std::fs::copy(from, &to).map_err(io(from))?;
    }
    let list = dir.join("tables.txt");
    std::fs::write(&list, order).map_err(io(&list))?;
    let sql = dir.join("inserts.sql");
    let mut text = inserts(&ui)?.join("\n");
    text.push('\n');
    std::fs::write(&sql, text).map_err(io(&sql))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_rows_whose_width_is_its_columns() {
        for t in tables(&dialogs::ui(), &["busybox".to_owned()]) {
            assert!(!t.rows.is_empty(), "{}", t.name);
            for r in &t.rows {
                assert_eq!(r.len(), t.columns.len(), "{}: {r:?}", t.name);
            }
            let text = t.text().expect("writable");
            assert_eq!(text.lines().count(), 3 + t.rows.len(), "{}", t.name);
        }
    }

    #[test]
    fn a_value_with_a_tab_or_a_quote_is_refused_not_written() {
        let t = Table {
            name: "Property",
            columns: &[("Property", "s72"), ("Value", "l0")],
            keys: &["Property"],
            rows: vec![vec!["A".into(), "x\ty".into()]],
        };
        assert!(matches!(t.text(), Err(IdtError::Separator { .. })));
        assert!(matches!(
            quoted("Property", "it's"),
            Err(IdtError::Quote { .. })
        ));
        let mut ui = dialogs::ui();
        ui.properties.push(("UI_X", "a'b".to_owned()));
        let e = inserts(&ui).expect_err("refused");
        assert!(e.to_string().contains("MSI's SQL cannot quote"), "{e}");
    }

    #[test]
    fn write_puts_the_binaries_beside_the_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dll = dir.path().join("ca.dll");
        let exe = dir.path().join("setup.exe");
        std::fs::write(&dll, b"MZ dll").expect("write");
        std::fs::write(&exe, b"MZ exe").expect("write");
        let out = dir.path().join("ui");
        let applets = dir.path().join("busybox.applets");
        std::fs::write(&applets, b"/bin/sh\n").expect("write");
        write(&out, &dll, &exe, std::slice::from_ref(&applets)).expect("written");
        assert_eq!(
            std::fs::read(out.join("Binary/ColinuxSetupCa.ibd")).expect("dll"),
            b"MZ dll"
        );
        assert_eq!(
            std::fs::read(out.join("Binary/ColinuxSetupAsset.busybox.applets.ibd")).expect("asset"),
            b"/bin/sh\n"
        );
        let listed = std::fs::read_to_string(out.join("tables.txt")).expect("list");
        assert!(listed.lines().all(|l| out.join(l).is_file()), "{listed}");
        let sql = std::fs::read_to_string(out.join("inserts.sql")).expect("sql");
        assert!(sql.contains("'UiWelcome', 'NOT Installed', 1100"), "{sql}");
        // A missing binary is named.
        let e = write(&out, &dir.path().join("nope.dll"), &exe, &[]).expect_err("missing");
        assert!(e.to_string().contains("nope.dll"), "{e}");
    }
}
