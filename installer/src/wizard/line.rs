//! The wizard's one-line text field: a value shown ready to edit (the install folder, a
//! size) with the keys a terminal user expects of a shell's line: Ctrl-U clears what is
//! before the cursor, Ctrl-W the word before it, Ctrl-K the rest of the line; Ctrl-A /
//! Home and Ctrl-E / End, the arrows, Backspace and Delete; Esc goes back. dialoguer's
//! `Input` takes no control key, so a user who pressed Ctrl-U in a pre-filled folder and
//! typed a path got the default with the path appended.
//!
//! [`Line`] is the editing, a pure function of the keys (unit-tested); [`read`] draws it
//! with the wizard's theme (the prompt as dialoguer draws its own) and reads the keys.

use std::io;

use console::{Key, Term};
use dialoguer::theme::Theme;

/// What a key did to the field.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    /// Keep editing.
    Continue,
    /// Enter: take the value.
    Done,
    /// Esc: go back without a value.
    Back,
}

/// The text and the cursor (a char index).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Line {
    chars: Vec<char>,
    pos: usize,
}

impl Line {
    /// `initial`, with the cursor at its end.
    pub fn new(initial: &str) -> Line {
        let chars: Vec<char> = initial.chars().collect();
        Line {
            pos: chars.len(),
            chars,
        }
    }

    /// The text.
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Where the cursor is (in chars from the start).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Applies one key.
    pub fn key(&mut self, key: &Key) -> Edit {
        match key {
            Key::Enter => return Edit::Done,
            Key::Escape => return Edit::Back,
            Key::Backspace if self.pos > 0 => {
                self.pos -= 1;
                self.chars.remove(self.pos);
            }
            Key::Del if self.pos < self.chars.len() => {
                self.chars.remove(self.pos);
            }
            Key::ArrowLeft => self.pos = self.pos.saturating_sub(1),
            Key::ArrowRight => self.pos = (self.pos + 1).min(self.chars.len()),
            Key::Home => self.pos = 0,
            Key::End => self.pos = self.chars.len(),
            // Ctrl-U: what is before the cursor.
            Key::Char('\u{15}') => {
                self.chars.drain(..self.pos);
                self.pos = 0;
            }
            // Ctrl-K: what is after it.
            Key::Char('\u{0b}') => self.chars.truncate(self.pos),
            // Ctrl-W: the word before the cursor (to the previous space, as a shell does).
            Key::Char('\u{17}') => {
                let mut start = self.pos;
                while start > 0 && self.chars[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.chars[start - 1] != ' ' {
                    start -= 1;
                }
                self.chars.drain(start..self.pos);
                self.pos = start;
            }
            Key::Char(c) if !c.is_control() => {
                self.chars.insert(self.pos, *c);
                self.pos += 1;
            }
            _ => {}
        }
        Edit::Continue
    }
}

/// Asks for one line on `term`, `initial` shown ready to edit: `Some(value)` on Enter,
/// `None` on Esc. Ctrl-C and a closed terminal are errors of their kinds (Interrupted,
/// UnexpectedEof), as dialoguer's prompts give them.
pub fn read(
    term: &Term,
    theme: &dyn Theme,
    prompt: &str,
    initial: &str,
) -> io::Result<Option<String>> {
    let mut head = String::new();
    let _ = theme.format_input_prompt(&mut head, prompt, None);
    let head_width = console::measure_text_width(&head);
    let mut line = Line::new(initial);
    // The rows above the cursor that the field's last drawing took (a long value wraps).
    let mut rows_above = 0usize;
    let draw = |line: &Line, rows_above: &mut usize| -> io::Result<()> {
        let width = usize::from(term.size().1).max(1);
        term.move_cursor_up(*rows_above)?;
        term.write_str("\r")?;
        term.clear_to_end_of_screen()?;
        let text = line.text();
        let before: String = text.chars().take(line.pos()).collect();
        let after: String = text.chars().skip(line.pos()).collect();
        // The cursor is left after `before`: the rest is drawn and the cursor put back.
        term.write_str(&format!("{head}{before}\x1b7{after}\x1b8"))?;
        *rows_above = (head_width + console::measure_text_width(&before)) / width;
        term.flush()
    };
    term.show_cursor()?;
    draw(&line, &mut rows_above)?;
    loop {
        let key = term.read_key()?;
        match line.key(&key) {
            Edit::Continue => draw(&line, &mut rows_above)?,
            Edit::Back => {
                term.move_cursor_up(rows_above)?;
                term.write_str("\r")?;
                term.clear_to_end_of_screen()?;
                return Ok(None);
            }
            Edit::Done => {
                term.move_cursor_up(rows_above)?;
                term.write_str("\r")?;
                term.clear_to_end_of_screen()?;
                let mut done = String::new();
                let _ = theme.format_input_prompt_selection(&mut done, prompt, &line.text());
                term.write_line(&done)?;
                return Ok(Some(line.text()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(initial: &str, keys: &[Key]) -> Line {
        let mut l = Line::new(initial);
        for k in keys {
            assert_eq!(l.key(k), Edit::Continue);
        }
        l
    }

    fn chars(s: &str) -> Vec<Key> {
        s.chars().map(Key::Char).collect()
    }

    #[test]
    fn ctrl_u_clears_the_prefilled_value_so_typing_replaces_it() {
        let keys = [vec![Key::Char('\u{15}')], chars("/srv/m")].concat();
        assert_eq!(
            typed("/home/me/.local/share/colinux-setup/minimal", &keys).text(),
            "/srv/m"
        );
        // Only what is before the cursor.
        let l = typed(
            "abc def",
            &[Key::ArrowLeft, Key::ArrowLeft, Key::Char('\u{15}')],
        );
        assert_eq!((l.text().as_str(), l.pos()), ("ef", 0));
    }

    #[test]
    fn ctrl_w_removes_the_word_before_the_cursor() {
        assert_eq!(typed("one two  ", &[Key::Char('\u{17}')]).text(), "one ");
        assert_eq!(typed("/a/b/c", &[Key::Char('\u{17}')]).text(), "");
        let keys = [vec![Key::Char('\u{17}')], chars("/x")].concat();
        assert_eq!(typed("/a/b/c", &keys).text(), "/x");
    }

    #[test]
    fn the_other_keys_edit_as_a_shell_line_does() {
        let l = typed(
            "ac",
            &[
                Key::ArrowLeft,
                Key::Char('b'),
                Key::End,
                Key::Char('d'),
                Key::Home,
                Key::Del,
            ],
        );
        assert_eq!(l.text(), "bcd");
        let l = typed("abc", &[Key::Home, Key::ArrowRight, Key::Char('\u{0b}')]);
        assert_eq!(l.text(), "a");
        // Control characters other than the editing keys are not inserted; Backspace at
        // the start does nothing.
        let l = typed(
            "x",
            &[Key::Home, Key::Backspace, Key::Char('\u{07}'), Key::Tab],
        );
        assert_eq!(l.text(), "x");
        assert_eq!(Line::new("x").key(&Key::Enter), Edit::Done);
        assert_eq!(Line::new("x").key(&Key::Escape), Edit::Back);
    }
}
