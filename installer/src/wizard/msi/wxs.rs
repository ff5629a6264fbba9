//! The pages ([`super::dialogs`]) as a WiX v3 fragment (`wix/ui.wxs`), so that a
//! Windows build with WiX (cargo-wix: candle and light compile every .wxs in wix/)
//! gets the same dialogs from the same definitions as the Linux build, whose wixl
//! cannot read `<UI>` (scripts/build-msi imports [`super::idt`]'s tables instead).
//! wix/main.wxs pulls it in with `<UIRef Id='ColinuxUI'/>` when `Wixl` is `no`.
//!
//! `msi ui-wxs` prints it; a unit test holds the checked-in wix/ui.wxs to it. Never run
//! through candle here (no WiX on Linux): its XML is checked for well-formedness only.

use std::fmt::Write as _;

use super::dialogs::{self, Control, Dialog, ENABLED, NO_PREFIX, SUNKEN, TRANSPARENT, Ui, VISIBLE};

/// XML text in a single-quoted attribute or an element.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

fn control(out: &mut String, ui: &Ui, d: &Dialog, c: &Control) {
    let mut attrs = format!(
        "Id='{}' Type='{}' X='{}' Y='{}' Width='{}' Height='{}'",
        c.name, c.kind, c.x, c.y, c.width, c.height
    );
    if let Some(p) = c.property {
        let _ = write!(attrs, " Property='{p}'");
        if let Some((_, v)) = ui.checkboxes.iter().find(|(cp, _)| *cp == p)
            && c.kind == "CheckBox"
        {
            let _ = write!(attrs, " CheckBoxValue='{v}'");
        }
    }
    if c.attributes & VISIBLE == 0 {
        attrs.push_str(" Hidden='yes'");
    }
    if c.attributes & ENABLED == 0 && c.kind != "Line" {
        attrs.push_str(" Disabled='yes'");
    }
    if c.attributes & SUNKEN != 0 {
        attrs.push_str(" Sunken='yes'");
    }
    // The same bit means Transparent for a Text, Multiline for an Edit and
    // ProgressBlocks for a ProgressBar.
    if c.attributes & TRANSPARENT != 0 {
        attrs.push_str(match c.kind {
            "ProgressBar" => " ProgressBlocks='yes'",
            "Edit" => " Multiline='yes'",
            _ => " Transparent='yes'",
        });
    }
    if c.attributes & NO_PREFIX != 0 {
        attrs.push_str(" NoPrefix='yes'");
    }
    if d.default == c.name {
        attrs.push_str(" Default='yes'");
    }
    if d.cancel == c.name {
        attrs.push_str(" Cancel='yes'");
    }
    // candle links the tab order in document order, skipping TabSkip controls: the
    // controls that take no focus, as dialogs::Dialog::chain does.
    if c.next.is_none() {
        attrs.push_str(" TabSkip='yes'");
    }
    let long = c.kind == "ScrollableText";
    if let Some(t) = c.text.as_deref().filter(|_| !long) {
        let _ = write!(attrs, " Text='{}'", esc(t));
    }
    let events: Vec<_> = ui
        .events
        .iter()
        .filter(|e| e.dialog == d.name && e.control == c.name)
        .collect();
    let conditions: Vec<_> = ui
        .conditions
        .iter()
        .filter(|k| k.dialog == d.name && k.control == c.name)
        .collect();
    let mappings: Vec<_> = ui
        .mappings
        .iter()
        .filter(|m| m.dialog == d.name && m.control == c.name)
        .collect();
    if events.is_empty() && conditions.is_empty() && mappings.is_empty() && !long {
        let _ = writeln!(out, "        <Control {attrs}/>");
        return;
    }
    let _ = writeln!(out, "        <Control {attrs}>");
    if long && let Some(t) = &c.text {
        let _ = writeln!(out, "          <Text>{}</Text>", esc(t));
    }
    for e in events {
        let cond = esc(&e.condition);
        match e.event.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            Some(property) => {
                let _ = writeln!(
                    out,
                    "          <Publish Property='{property}' Value='{}' Order='{}'>{cond}</Publish>",
                    esc(&e.argument),
                    e.order
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "          <Publish Event='{}' Value='{}' Order='{}'>{cond}</Publish>",
                    e.event,
                    esc(&e.argument),
                    e.order
                );
            }
        }
    }
    for k in conditions {
        let _ = writeln!(
            out,
            "          <Condition Action='{}'>{}</Condition>",
            k.action.to_ascii_lowercase(),
            esc(k.condition)
        );
    }
    for m in mappings {
        let _ = writeln!(
            out,
            "          <Subscribe Event='{}' Attribute='{}'/>",
            m.event, m.attribute
        );
    }
    let _ = writeln!(out, "        </Control>");
}

/// wix/ui.wxs, from the pages.
pub fn text() -> String {
    let ui = dialogs::ui();
    let mut s = String::new();
    s.push_str(
        "<?xml version='1.0' encoding='windows-1252'?>\n\
         <!-- setup.msi's dialogs for a WiX build on Windows (cargo wix), written by\n     \
         `colinux-setup msi ui-wxs` from the program's page definitions\n     \
         (installer/src/wizard/msi/dialogs.rs); do not edit it. The wixl build on Linux\n     \
         (scripts/build-msi) gets the same pages as tables. -->\n\
         <Wix xmlns='http://schemas.microsoft.com/wix/2006/wi'>\n  <Fragment>\n",
    );
    let _ = writeln!(
        s,
        "    <Binary Id='{}' SourceFile='$(var.CargoTargetBinDir)\\colinux_setup_ca.dll'/>",
        dialogs::CA_BINARY
    );
    let _ = writeln!(
        s,
        "    <Binary Id='{}' SourceFile='$(var.CargoTargetBinDir)\\colinux-setup.exe'/>",
        dialogs::EXE_BINARY
    );
    let _ = writeln!(
        s,
        "    <CustomAction Id='{}' BinaryKey='{}' DllEntry='{}' Execute='immediate' Return='check'/>",
        dialogs::CUSTOM_ACTION,
        dialogs::CA_BINARY,
        dialogs::CUSTOM_ACTION
    );
    for (p, v) in &ui.properties {
        let _ = writeln!(s, "    <Property Id='{p}' Value='{}'/>", esc(v));
    }
    s.push_str("    <UI Id='ColinuxUI'>\n");
    for t in &ui.styles {
        let bold = if t.bold { " Bold='yes'" } else { "" };
        let _ = writeln!(
            s,
            "      <TextStyle Id='{}' FaceName='{}' Size='{}'{bold}/>",
            t.name, t.face, t.size
        );
    }
    for d in &ui.dialogs {
        let modeless = if d.attributes & 0x2 == 0 {
            " Modeless='yes' KeepModeless='yes'"
        } else {
            " TrackDiskSpace='yes'"
        };
        let _ = writeln!(
            s,
            "      <Dialog Id='{}' Width='{}' Height='{}' Title='{}'{modeless}>",
            d.name,
            d.width,
            d.height,
            esc(d.title)
        );
        // The first control to get the focus comes first among the focusable ones.
        for c in &d.controls {
            control(&mut s, &ui, d, c);
        }
        s.push_str("      </Dialog>\n");
    }
    s.push_str("      <InstallUISequence>\n");
    for (action, condition, seq) in &ui.ui_sequence {
        let tag = if *action == dialogs::CUSTOM_ACTION {
            format!("Custom Action='{action}'")
        } else {
            format!("Show Dialog='{action}'")
        };
        let at = match seq {
            -1 => " OnExit='success'".to_owned(),
            -2 => " OnExit='cancel'".to_owned(),
            -3 => " OnExit='error'".to_owned(),
            n => format!(" Sequence='{n}'"),
        };
        if condition.is_empty() {
            let _ = writeln!(s, "        <{tag}{at}/>");
        } else {
            let end = tag.split(' ').next().unwrap_or("Show");
            let _ = writeln!(s, "        <{tag}{at}>{}</{end}>", esc(condition));
        }
    }
    s.push_str("      </InstallUISequence>\n");
    for (action, text) in &ui.action_texts {
        let _ = writeln!(
            s,
            "      <ProgressText Action='{action}'>{}</ProgressText>",
            esc(text)
        );
    }
    s.push_str("    </UI>\n  </Fragment>\n</Wix>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wix_ui_wxs_is_what_the_pages_give() {
        let checked_in = include_str!("../../../../wix/ui.wxs");
        assert!(
            checked_in == text(),
            "wix/ui.wxs is not what the pages give; run `colinux-setup msi ui-wxs > wix/ui.wxs`"
        );
    }

    #[test]
    fn the_fragment_is_well_formed_xml_with_every_dialog() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ui.wxs");
        std::fs::write(&file, text()).expect("write");
        let o = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); \
                 print(len(d.getElementsByTagName('Dialog')))",
            ])
            .arg(&file)
            .output()
            .expect("python3 (scripts/test installs it)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let n: usize = String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("a count");
        assert_eq!(n, dialogs::ui().dialogs.len());
        // A preprocessor variable in a text would be expanded by candle.
        assert!(!text().contains("$(") || text().matches("$(").count() == 2);
    }
}
