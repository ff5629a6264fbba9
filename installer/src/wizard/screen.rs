//! Text that fits the terminal: lines broken at spaces (never inside a word; a
//! continuation is indented under its line), a page cut to the rows there are, and a
//! pager for texts longer than the screen (the whole license, the whole plan).

use console::{Key, Term, style};

/// `text`'s lines broken at spaces to at most `width` columns. A broken line goes on
/// indented two columns deeper than its own indentation; a word longer than the width
/// stays whole on its own line. Spacing inside a line that fits is kept as it is (the
/// plan's aligned columns).
pub fn fit(text: &str, width: usize) -> Vec<String> {
    let width = width.max(20);
    let mut out = Vec::new();
    for line in text.lines() {
        if console::measure_text_width(line) <= width {
            out.push(line.to_owned());
            continue;
        }
        let lead = line.len() - line.trim_start().len();
        let indent = format!("{}  ", &line[..lead]);
        // Each word with the spaces before it, as the line has them.
        let mut tokens: Vec<(&str, &str)> = Vec::new();
        let mut rest = &line[lead..];
        while !rest.is_empty() {
            let word_at = rest.len() - rest.trim_start_matches(' ').len();
            let after = &rest[word_at..];
            let word_len = after.find(' ').unwrap_or(after.len());
            tokens.push((&rest[..word_at], &after[..word_len]));
            rest = &after[word_len..];
        }
        let mut cur = line[..lead].to_owned();
        let mut fresh = true;
        for (sep, word) in tokens {
            if word.is_empty() {
                continue;
            }
            let len = console::measure_text_width(&cur);
            let sep_len = console::measure_text_width(sep);
            if !fresh && len + sep_len + console::measure_text_width(word) > width {
                out.push(std::mem::replace(&mut cur, indent.clone()));
            } else if !fresh {
                cur.push_str(sep);
            }
            cur.push_str(word);
            fresh = false;
        }
        out.push(cur);
    }
    out
}

/// The width text is broken to and the rows of the terminal (80 × 24 when it does not
/// say). The width leaves the last column free: a row filled to it makes some terminals
/// wrap the cursor and the next line's start.
pub fn size(term: &Term) -> (usize, usize) {
    let (rows, cols) = term.size();
    (
        usize::from(cols).saturating_sub(1).max(20),
        usize::from(rows).max(10),
    )
}

/// Shows `text` a screen at a time: Enter, Space or the down keys for the next screen,
/// `b` or the up keys for the previous one, `q` or Esc to stop; the last screen ends on
/// any of the forward keys too. Ctrl-C is an error of kind Interrupted, as the
/// prompts give it.
pub fn pager(term: &Term, title: &str, text: &str) -> std::io::Result<()> {
    let (cols, rows) = size(term);
    let lines = fit(text, cols);
    // The title, a blank line and the pager's own line.
    let per = rows.saturating_sub(3).max(1);
    let mut top = 0usize;
    loop {
        term.clear_screen()?;
        term.write_line(&format!("{}", style(title).bold().underlined()))?;
        term.write_line("")?;
        let end = (top + per).min(lines.len());
        for l in &lines[top..end] {
            term.write_line(l)?;
        }
        let last = end >= lines.len();
        term.write_str(&format!(
            "{}",
            style(format!(
                "-- lines {}-{} of {}: {}b back a screen, q done --",
                top + 1,
                end,
                lines.len(),
                if last {
                    "Enter done, "
                } else {
                    "Enter or Space next screen, "
                }
            ))
            .dim()
        ))?;
        match term.read_key()? {
            Key::Enter | Key::Char(' ') | Key::ArrowDown | Key::PageDown if !last => top = end,
            Key::Enter | Key::Char(' ') | Key::ArrowDown | Key::PageDown => break,
            Key::Char('b') | Key::ArrowUp | Key::PageUp => top = top.saturating_sub(per),
            Key::Char('q') | Key::Escape => break,
            _ => {}
        }
    }
    term.clear_screen()
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn long_lines_break_at_spaces_under_their_indentation() {
        // The aligned column of a broken line is kept too.
        assert_eq!(
            fit("  monitor:   coLinux (asked for; here)", 28),
            vec!["  monitor:   coLinux (asked", "    for; here)"]
        );
        let got = fit("  warning: one two three four five six", 20);
        assert_eq!(
            got,
            vec!["  warning: one two", "    three four five", "    six"]
        );
        for l in &got {
            assert!(l.len() <= 20, "{l}");
        }
        // A line that fits keeps its aligned spacing.
        assert_eq!(fit("  user:     root", 20), vec!["  user:     root"]);
        // A word longer than the width stays whole.
        assert_eq!(
            fit("a averyveryverylongwordthatdoesnotfit b", 20),
            vec!["a", "  averyveryverylongwordthatdoesnotfit", "  b"]
        );
        assert_eq!(fit("one\n\ntwo", 20), vec!["one", "", "two"]);
    }

    /// No word is cut: every word of the text is whole in the lines.
    #[test]
    fn no_word_is_cut_at_120_columns() {
        let text = "  warning: coLinux does not run on hosts with more than 4 GB of RAM (its driver refuses them); this host has 24105 MB. The machine can be installed here, but colinux-daemon will not start on this host; use the uml or qemu monitor here";
        let lines = fit(text, 120);
        assert!(lines.len() > 1);
        let words: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        assert_eq!(words, text.split_whitespace().collect::<Vec<_>>());
        assert!(lines.iter().all(|l| l.len() <= 120));
    }
}
