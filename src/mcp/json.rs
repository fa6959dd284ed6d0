//! A strict, allocation-free JSON scanner for the JSON-RPC peek.
//!
//! [`Scanner`] walks a body once and checks the RFC 8259 grammar of all of
//! it, while handing the peek only what it asks for: member names, string
//! values and the raw text of a value. Values the peek does not need (a
//! tool's `arguments`, a response's `result`) are checked and skipped
//! without building anything, which is most of the body.
//!
//! It accepts the texts `serde_json` accepts: the same grammar, the same
//! escapes, no control characters in strings, no trailing commas, nesting
//! up to the same depth. Like `serde_json` reading into `IgnoredAny`, it
//! does not check the UTF-8 of strings it skips; a string it decodes is
//! checked.

use std::borrow::Cow;

/// Nesting deeper than this is refused, as `serde_json` refuses it (its
/// recursion limit), so no downstream parser sees a body we passed
/// unread.
pub(crate) const MAX_DEPTH: usize = 127;

/// Where and why a body is not JSON: the byte offset of the first byte
/// that cannot be read, and what was expected there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) offset: usize,
    pub(crate) expected: &'static str,
}

impl SyntaxError {
    /// The 1-based line and column (in bytes) of the error.
    pub(crate) fn line_column(&self, body: &[u8]) -> (usize, usize) {
        let before = &body[..self.offset.min(body.len())];
        let line = 1 + before.iter().filter(|b| **b == b'\n').count();
        let start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        (line, before.len() - start + 1)
    }
}

type Result<T> = std::result::Result<T, SyntaxError>;

/// Where the run of plain string bytes starting at `i` ends: the first
/// quote, backslash or control character at or after `i`, or the end.
///
/// The first 16 bytes are looked at eight at a time (SWAR), inline: that
/// ends most runs (member names, short values). [`long_run_end`] goes on.
#[inline(always)]
fn run_end(bytes: &[u8], i: usize) -> usize {
    match swar_run_end(bytes, i, 2) {
        Ok(end) => end,
        Err(i) => long_run_end(bytes, i),
    }
}

/// Up to `words` eight-byte words from `i`: `Ok` with where the run ends
/// when it ends there, else `Err` with where the words stopped.
///
/// A byte is flagged when it is below 0x20 or equal to `"` or `\\`; the
/// classic zero-byte test can flag a byte only after a truly flagged one,
/// so the lowest flag is exact.
#[inline(always)]
fn swar_run_end(bytes: &[u8], mut i: usize, words: usize) -> std::result::Result<usize, usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    for _ in 0..words {
        let Some(chunk) = bytes.get(i..i + 8) else {
            return Ok(short_run_end(bytes, i));
        };
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let flags = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        let flags = flags & HIGHS;
        if flags != 0 {
            return Ok(i + (flags.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    Err(i)
}

/// [`run_end`] past its first 16 bytes: six more words (most names and
/// URIs end there), then vector searches: `memchr`'s for the quote or
/// backslash, and one pass over the bytes before it for a control
/// character.
#[inline(never)]
fn long_run_end(bytes: &[u8], i: usize) -> usize {
    let i = match swar_run_end(bytes, i, 6) {
        Ok(end) => return end,
        Err(i) => i,
    };
    let rest = bytes.get(i..).unwrap_or_default();
    let run = memchr::memchr2(b'"', b'\\', rest).map_or(rest, |end| &rest[..end]);
    // `min` over bytes vectorises; `position` (rare: a control character
    // is an error) finds the first one.
    if run.iter().copied().min().is_some_and(|b| b < 0x20) {
        return i + run.iter().position(|b| *b < 0x20).unwrap_or(run.len());
    }
    i + run.len()
}

/// [`run_end`] over fewer than eight bytes, one at a time.
#[inline(never)]
fn short_run_end(bytes: &[u8], mut i: usize) -> usize {
    while let Some(&b) = bytes.get(i) {
        if b < 0x20 || b == b'"' || b == b'\\' {
            break;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
thread_local! {
    /// How many strings with escapes this thread has decoded (tests count
    /// the work an escaped value costs).
    pub(crate) static ESCAPED_DECODES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A JSON string as it appears in the body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JsonStr<'a> {
    /// The string with its quotes.
    quoted: &'a [u8],
    /// The offset of the opening quote.
    offset: usize,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The decoded string: borrowed when it holds no escape.
    pub(crate) fn decode(&self) -> Result<Cow<'a, str>> {
        let invalid = SyntaxError {
            offset: self.offset,
            expected: "a string of valid UTF-8",
        };
        if !self.escaped {
            return std::str::from_utf8(&self.quoted[1..self.quoted.len() - 1])
                .map(Cow::Borrowed)
                .map_err(|_| invalid);
        }
        // Rare: serde_json decodes the escapes and surrogate pairs; the
        // scanner has checked the grammar already.
        #[cfg(test)]
        ESCAPED_DECODES.with(|n| n.set(n.get() + 1));
        serde_json::from_slice::<String>(self.quoted)
            .map(Cow::Owned)
            .map_err(|_| invalid)
    }

    /// The bytes of the string, for comparing a member name with known
    /// names: borrowed (and not checked for UTF-8, which a known name
    /// needs no check for) when it has no escape, else decoded.
    pub(crate) fn name(&self) -> Result<Cow<'a, [u8]>> {
        if self.escaped {
            Ok(Cow::Owned(self.decode()?.into_owned().into_bytes()))
        } else {
            Ok(Cow::Borrowed(&self.quoted[1..self.quoted.len() - 1]))
        }
    }

    /// Where the string, quotes included, lies in the scanned text.
    pub(crate) fn span(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.quoted.len()
    }

    /// Whether the string, decoded, is `s` (no allocation without
    /// escapes).
    pub(crate) fn is(&self, s: &str) -> bool {
        if self.escaped {
            self.decode().is_ok_and(|d| d == s)
        } else {
            &self.quoted[1..self.quoted.len() - 1] == s.as_bytes()
        }
    }
}

/// A cursor over a body.
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn error<T>(&self, expected: &'static str) -> Result<T> {
        Err(SyntaxError {
            offset: self.pos,
            expected,
        })
    }

    /// Skips white space and returns the next byte, not consuming it.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.pos = skip_ws(self.bytes, self.pos);
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte` (after white space) when it is next.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `byte` (after white space), or fails with `expected`.
    pub(crate) fn expect(&mut self, byte: u8, expected: &'static str) -> Result<()> {
        if self.eat(byte) {
            Ok(())
        } else {
            self.error(expected)
        }
    }

    /// After the last value: only white space may follow.
    pub(crate) fn end(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.error("the end of the body (trailing characters)"),
        }
    }

    /// Reads a string (after white space).
    pub(crate) fn string(&mut self, expected: &'static str) -> Result<JsonStr<'a>> {
        if self.peek() != Some(b'"') {
            return self.error(expected);
        }
        let start = self.pos;
        let escaped = self.skip_string()?;
        Ok(JsonStr {
            quoted: &self.bytes[start..self.pos],
            offset: start,
            escaped,
        })
    }

    /// Reads the name of an object member and the `:` after it.
    pub(crate) fn member_name(&mut self) -> Result<JsonStr<'a>> {
        let name = self.string("a member name (a string)")?;
        self.expect(b':', "`:` after a member name")?;
        Ok(name)
    }

    /// After a member's value: `true` when another member follows (`,`),
    /// `false` at the end of the object.
    pub(crate) fn next_member(&mut self) -> Result<bool> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b'}') => {
                self.pos += 1;
                Ok(false)
            }
            _ => self.error("`,` or `}` after a member"),
        }
    }

    /// After an array element: `true` when another element follows.
    pub(crate) fn next_element(&mut self) -> Result<bool> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            _ => self.error("`,` or `]` after an element"),
        }
    }

    /// Checks and skips one value (after white space) and returns its
    /// text, nesting at most `depth` levels.
    pub(crate) fn value(&mut self, depth: usize) -> Result<&'a [u8]> {
        if self.peek().is_none() {
            return self.error("a JSON value");
        }
        let start = self.pos;
        self.skip_value(depth)?;
        Ok(&self.bytes[start..self.pos])
    }

    /// The scanner's one loop over nested values, on a local cursor (the
    /// hot path: a tool's arguments are most of a body). `stack` holds one
    /// bit per open container (1 = array), which is why the depth is
    /// capped.
    fn skip_value(&mut self, depth: usize) -> Result<()> {
        const _: () = assert!(MAX_DEPTH <= 128);
        let depth = depth.min(MAX_DEPTH);
        let bytes = self.bytes;
        let mut i = self.pos;
        let mut stack: u128 = 0;
        let mut open = 0usize;
        let fail = |offset: usize, expected: &'static str| Err(SyntaxError { offset, expected });
        'value: loop {
            i = skip_ws(bytes, i);
            match bytes.get(i) {
                Some(b'"') => i = skip_string_at(bytes, i)?.0,
                Some(b'{' | b'[') if open == depth => {
                    return fail(i, "less deeply nested values");
                }
                Some(b'{') => {
                    i = skip_ws(bytes, i + 1);
                    if bytes.get(i) == Some(&b'}') {
                        i += 1;
                    } else {
                        open += 1;
                        stack <<= 1;
                        i = member_name_at(bytes, i)?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    i = skip_ws(bytes, i + 1);
                    if bytes.get(i) == Some(&b']') {
                        i += 1;
                    } else {
                        open += 1;
                        stack = (stack << 1) | 1;
                        continue 'value;
                    }
                }
                Some(b'-' | b'0'..=b'9') => i = skip_number_at(bytes, i)?,
                Some(b't') => i = literal_at(bytes, i, b"true")?,
                Some(b'f') => i = literal_at(bytes, i, b"false")?,
                Some(b'n') => i = literal_at(bytes, i, b"null")?,
                _ => return fail(i, "a JSON value"),
            }
            // A value is complete: close every container it completes.
            loop {
                if open == 0 {
                    self.pos = i;
                    return Ok(());
                }
                i = skip_ws(bytes, i);
                let in_array = stack & 1 == 1;
                match bytes.get(i) {
                    Some(b',') if in_array => {
                        i += 1;
                        continue 'value;
                    }
                    Some(b',') => {
                        i = member_name_at(bytes, skip_ws(bytes, i + 1))?;
                        continue 'value;
                    }
                    Some(b']') if in_array => {}
                    Some(b'}') if !in_array => {}
                    _ if in_array => return fail(i, "`,` or `]` after an element"),
                    _ => return fail(i, "`,` or `}` after a member"),
                }
                i += 1;
                open -= 1;
                stack >>= 1;
            }
        }
    }

    /// Skips a string at its opening quote; `true` when it has escapes.
    fn skip_string(&mut self) -> Result<bool> {
        let (end, escaped) = skip_string_at(self.bytes, self.pos)?;
        self.pos = end;
        Ok(escaped)
    }
}

/// The first byte at or after `i` that is not white space. (JSON's white
/// space is all below `!`; any other byte below it is an error that the
/// caller reports.)
#[inline(always)]
fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while let Some(&b) = bytes.get(i) {
        if b > b' ' || !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            break;
        }
        i += 1;
    }
    i
}

/// A member name at `i` and the `:` after it: the offset after the `:`.
#[inline(always)]
fn member_name_at(bytes: &[u8], i: usize) -> Result<usize> {
    if bytes.get(i) != Some(&b'"') {
        return Err(SyntaxError {
            offset: i,
            expected: "a member name (a string)",
        });
    }
    let i = skip_ws(bytes, skip_string_at(bytes, i)?.0);
    if bytes.get(i) != Some(&b':') {
        return Err(SyntaxError {
            offset: i,
            expected: "`:` after a member name",
        });
    }
    Ok(i + 1)
}

/// Skips the string whose opening quote is at `i`: the offset after its
/// closing quote, and whether it has escapes.
#[inline(always)]
fn skip_string_at(bytes: &[u8], i: usize) -> Result<(usize, bool)> {
    let mut i = run_end(bytes, i + 1);
    if bytes.get(i) == Some(&b'"') {
        return Ok((i + 1, false));
    }
    loop {
        match bytes.get(i) {
            Some(b'"') => return Ok((i + 1, true)),
            Some(b'\\') => match bytes.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = bytes.get(i + 2..i + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(SyntaxError {
                            offset: i,
                            expected: "four hex digits after `\\u`",
                        });
                    }
                    i += 6;
                }
                _ => {
                    return Err(SyntaxError {
                        offset: i,
                        expected: "a valid escape after `\\`",
                    })
                }
            },
            Some(_) => {
                return Err(SyntaxError {
                    offset: i,
                    expected: "no control character in a string (escape it)",
                })
            }
            None => {
                return Err(SyntaxError {
                    offset: i,
                    expected: "the end of a string (`\"`)",
                })
            }
        }
        i = run_end(bytes, i);
    }
}

/// Skips the number at `i`:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn skip_number_at(bytes: &[u8], mut i: usize) -> Result<usize> {
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let fail = |offset: usize, expected: &'static str| Err(SyntaxError { offset, expected });
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return fail(i, "a digit"),
    }
    if bytes.get(i) == Some(&b'.') {
        if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return fail(i + 1, "a digit after `.`");
        }
        i = digits(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
            return fail(i, "a digit in the exponent");
        }
        i = digits(i);
    }
    Ok(i)
}

/// Skips the literal `word` at `i`.
fn literal_at(bytes: &[u8], i: usize, word: &'static [u8]) -> Result<usize> {
    for (n, expected) in word.iter().enumerate() {
        if bytes.get(i + n) != Some(expected) {
            return Err(SyntaxError {
                offset: i + n,
                expected: "a JSON value",
            });
        }
    }
    Ok(i + word.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans one whole value, as a body.
    fn scan(text: &str) -> Result<()> {
        let mut s = Scanner::new(text.as_bytes());
        s.value(MAX_DEPTH)?;
        s.end()
    }

    #[test]
    fn accepts_what_serde_json_accepts() {
        for text in [
            "0",
            "-0",
            "-12.5e+3",
            "1E9",
            "0.000",
            "true",
            "false",
            "null",
            r#""""#,
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00""#,
            "\"héllo wörld, a string longer than eight bytes\"",
            "[]",
            "{}",
            " [ 1 , { \"a\" : [ ] , \"b\" : { } } , \"x\" ]\n",
            r#"{"a":{"b":{"c":[[[null]]]}}}"#,
        ] {
            assert!(scan(text).is_ok(), "{text}");
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for text in [
            "",
            " ",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "True",
            "\"abc",
            "\"a\tb\"",
            "\"\\x\"",
            "\"\\u12G4\"",
            "\"\\u12\"",
            "[1,]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\":1 \"b\":2}",
            "[",
            "{",
            "]",
            "1 2",
            "[1]]",
            "NaN",
        ] {
            assert!(scan(text).is_err(), "{text:?}");
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(text).is_err(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn nesting_is_capped_like_serde_json() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(scan(&deep(MAX_DEPTH)).is_ok());
        assert!(scan(&deep(MAX_DEPTH + 1)).is_err());
        assert!(serde_json::from_str::<serde_json::Value>(&deep(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&deep(MAX_DEPTH + 1)).is_err());
        let objects = format!(
            "{}1{}",
            "{\"a\":".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert!(scan(&objects).is_err());
    }

    #[test]
    fn strings_decode_and_compare() {
        let mut s = Scanner::new(br#" "plain" "es\u0063aped\n" "#);
        let plain = s.string("a string").unwrap();
        assert_eq!(plain.decode().unwrap(), Cow::Borrowed("plain"));
        assert!(plain.is("plain") && !plain.is("plai"));
        let escaped = s.string("a string").unwrap();
        assert_eq!(escaped.decode().unwrap(), "escaped\n");
        assert!(escaped.is("escaped\n"));
        assert!(s.end().is_ok());
        let lone = Scanner::new(br#""\ud800""#).string("a string").unwrap();
        assert!(lone.decode().is_err(), "a lone surrogate is not a string");
        let bad_utf8 = Scanner::new(b"\"\xff\"").string("a string").unwrap();
        assert!(bad_utf8.decode().is_err());
    }

    #[test]
    fn runs_end_at_the_first_special_byte_wherever_it_is() {
        for len in 0..20 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                for at in 0..=len {
                    let mut text = vec![b'a'; len];
                    text.extend_from_slice("é~\x7f".as_bytes());
                    if at < len {
                        text[at] = special;
                    }
                    let plain = len + "é~\x7f".len();
                    let expected = if at < len { at } else { plain };
                    assert_eq!(run_end(&text, 0), expected, "{len} {special} {at}");
                }
            }
        }
        // A flag after the first must not move it (borrows in the SWAR test).
        assert_eq!(run_end(b"ab\x01\x00\"\\cdefgh", 0), 2);
        assert_eq!(run_end(b"\x21\x20\x1f", 0), 2);
    }

    #[test]
    fn errors_say_where() {
        let e = scan("[1, tru]").unwrap_err();
        assert_eq!(e.offset, 7);
        assert_eq!(e.line_column(b"[1, tru]"), (1, 8));
        let body = b"{\n  \"a\": x}";
        let mut s = Scanner::new(body);
        let e = s.value(MAX_DEPTH).unwrap_err();
        assert_eq!(e.line_column(body), (2, 8));
    }
}
