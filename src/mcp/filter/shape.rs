//! The shape of a list result: found by the crate's JSON scanner without
//! building a value, and filtered on a [`serde_json::Value`] only when it is
//! there.
//!
//! A message carries a list when its `result` is an object with a
//! `tools`, `prompts`, `resources`, `resourceTemplates` or `skills` member
//! that is an array, whatever its `id` (a number rmcp rewrites, an id another exchange
//! used) and whatever request it answers.

use std::borrow::Cow;

use serde_json::Value;

use super::super::json::{Scanner, SyntaxError, MAX_DEPTH};

/// One list member of a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum ListKind {
    /// `tools`: kept when `tools/call` of the item's `name` is allowed.
    Tools,
    /// `prompts`: kept when `prompts/get` of the item's `name` is allowed.
    Prompts,
    /// `resources`: kept when `resources/read` of the item's `uri` is.
    Resources,
    /// `resourceTemplates`: kept when reading the item's `uriTemplate` is.
    Templates,
    /// `skills` (`skills/list`, the skills extension, SEP-2640): kept when
    /// `skills/get` of the item's `uri` is allowed.
    Skills,
}

impl ListKind {
    const ALL: [Self; 5] = [
        Self::Tools,
        Self::Prompts,
        Self::Resources,
        Self::Templates,
        Self::Skills,
    ];

    /// The result member holding the items.
    fn member(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resourceTemplates",
            Self::Skills => "skills",
        }
    }

    /// The item member naming one item.
    pub(super) fn key(self) -> &'static str {
        match self {
            Self::Tools | Self::Prompts => "name",
            Self::Resources | Self::Skills => "uri",
            Self::Templates => "uriTemplate",
        }
    }

    /// What one item is, for a report.
    pub(super) fn item(self) -> &'static str {
        match self {
            Self::Tools => "tool",
            Self::Prompts => "prompt",
            Self::Resources => "resource",
            Self::Templates => "resource template",
            Self::Skills => "skill",
        }
    }
}

/// Whether `text` has a NUL byte or an escape other than the eight that
/// stand for one fixed character that is not a letter of a name.
///
/// `memchr`'s vector search skips the stretches without a backslash or a
/// NUL; once escapes turn out dense (a tool result's JSON text in a JSON
/// string is full of `\"`, and restarting a search at each costs its
/// set-up every time), the rest is read sixteen bytes at a time
/// ([`dense_spells_letters`]).
pub(crate) fn may_spell_letters(text: &[u8]) -> bool {
    /// How many escapes make a text dense.
    const DENSE: usize = 4;
    let mut next = 0;
    let mut escapes = 0;
    while let Some(found) = memchr::memchr2(b'\\', 0, &text[next..]) {
        let i = next + found;
        match (text[i], text.get(i + 1)) {
            (b'\\', Some(&c)) if ends_fixed_escape(c) => next = i + 2,
            _ => return true,
        }
        escapes += 1;
        if escapes == DENSE {
            return dense_spells_letters(text, next);
        }
    }
    false
}

/// Whether `\` then `c` is one of the eight escapes that stand for one
/// fixed character that is not a letter of a name.
fn ends_fixed_escape(c: u8) -> bool {
    matches!(c, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
}

/// [`may_spell_letters`] over `text[from..]`, where no escape is under way
/// at `from`: sixteen bytes at a time, with no branch inside a block (the
/// compiler compares a block in vector registers). A block is looked at
/// closer only where a NUL byte is, or a backslash that is not before one
/// of the fixed escapes' letters: the `\"` of a JSON text cost nothing. A
/// backslash before a backslash is looked at, as a run of them reads in
/// pairs.
fn dense_spells_letters(text: &[u8], from: usize) -> bool {
    const BLOCK: usize = 16;
    /// Bit `i`: `here[i]`, followed by `next[i]`, needs a closer look.
    #[inline(always)]
    fn marks(here: &[u8; BLOCK], next: &[u8; BLOCK]) -> u16 {
        // A plain loop, not `std::array::from_fn`: some builds do not
        // inline the latter, and pay a call per block.
        let mut bytes = [0u8; BLOCK];
        for ((out, &b), &c) in bytes.iter_mut().zip(here).zip(next) {
            // `ends_fixed_escape` but a backslash (a run of them pairs
            // up, so it is looked at), spelled as compares: the compiler
            // keeps these in vector registers, not a `matches!`.
            let fixed = (c == b'"')
                | (c == b'/')
                | (c == b'b')
                | (c == b'f')
                | (c == b'n')
                | (c == b'r')
                | (c == b't');
            *out = u8::from((b == 0) | ((b == b'\\') & !fixed));
        }
        // Each byte (0 or 1) of a half lands on its own bit of the
        // product's top byte, with no carry.
        let gather = |half: &[u8]| {
            let half = u64::from_le_bytes(half.try_into().unwrap_or_default());
            (half.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u16
        };
        gather(&bytes[..BLOCK / 2]) | gather(&bytes[BLOCK / 2..]) << 8
    }
    let block = |bytes: &[u8], at: usize| -> [u8; BLOCK] {
        bytes[at..at + BLOCK].try_into().unwrap_or_default()
    };
    // Escapes before `after` were read whole: a fixed escape's second byte
    // starts nothing.
    let mut after = from;
    let mut at = from;
    while at < text.len() {
        let mut marked = if at + BLOCK < text.len() {
            marks(&block(text, at), &block(text, at + 1))
        } else {
            // The last block, padded with spaces (which mark nothing).
            let rest = text.len() - at;
            let mut padded = [b' '; BLOCK + 1];
            padded[..rest].copy_from_slice(&text[at..]);
            marks(&block(&padded, 0), &block(&padded, 1)) & (u16::MAX >> (BLOCK - rest))
        };
        while marked != 0 {
            let i = at + marked.trailing_zeros() as usize;
            marked &= marked - 1;
            match (text[i], text.get(i + 1)) {
                (b'\\', _) if i < after => {}
                (b'\\', Some(&c)) if ends_fixed_escape(c) => after = i + 2,
                _ => return true,
            }
        }
        at += BLOCK;
    }
    false
}

/// Whether `text` (one JSON-RPC message, or a batch of them) holds a
/// message whose `result` has a list member. All of `text` is checked:
/// an error when it is not one JSON value (the reply then cannot be
/// filtered, and must not go out).
pub(super) fn carries_list(text: &[u8]) -> Result<bool, SyntaxError> {
    let mut s = Scanner::new(text);
    let found = match s.peek() {
        Some(b'[') => {
            s.expect(b'[', "`[`")?;
            let mut found = false;
            if !s.eat(b']') {
                loop {
                    found |= message_or_value(&mut s, MAX_DEPTH - 1)?;
                    if !s.next_element()? {
                        break;
                    }
                }
            }
            found
        }
        _ => message_or_value(&mut s, MAX_DEPTH)?,
    };
    s.end()?;
    Ok(found)
}

/// One message (an object), or any other value, skipped. `room`: how many
/// levels of nesting are still allowed.
fn message_or_value(s: &mut Scanner<'_>, room: usize) -> Result<bool, SyntaxError> {
    if s.peek() != Some(b'{') || room == 0 {
        s.value(room)?;
        return Ok(false);
    }
    s.expect(b'{', "`{`")?;
    let mut found = false;
    if s.eat(b'}') {
        return Ok(false);
    }
    loop {
        let name = s.member_name()?;
        if name.is("result") && s.peek() == Some(b'{') && room > 1 {
            found |= result(s, room - 1)?;
        } else {
            s.value(room - 1)?;
        }
        if !s.next_member()? {
            break;
        }
    }
    Ok(found)
}

/// A result object: whether one of its members is a list.
fn result(s: &mut Scanner<'_>, room: usize) -> Result<bool, SyntaxError> {
    s.expect(b'{', "`{`")?;
    let mut found = false;
    if s.eat(b'}') {
        return Ok(false);
    }
    loop {
        let name = s.member_name()?;
        if s.peek() == Some(b'[') && !found {
            let name: Cow<'_, [u8]> = name.name()?;
            found = ListKind::ALL
                .iter()
                .any(|k| *name == *k.member().as_bytes());
        }
        s.value(room - 1)?;
        if !s.next_member()? {
            break;
        }
    }
    Ok(found)
}

/// What a list held before it was filtered: its kind, every item, and
/// whether it is a listing's last page (no `nextCursor`).
pub(super) type Observe<'a> = &'a dyn Fn(ListKind, &[Value], bool);

/// Filters every list member of every message in `value` (a message or a
/// batch) to the items `allowed` keeps, and marks each such result
/// `"cacheScope": "private"` (SEP-2549: a list filtered for one caller must
/// not be served to another). `observe` sees each list first. `true` when
/// there was a list.
pub(super) fn filter(
    value: &mut Value,
    allowed: &dyn Fn(ListKind, &str) -> bool,
    observe: Observe<'_>,
) -> bool {
    match value {
        Value::Array(batch) => batch
            .iter_mut()
            .fold(false, |acc, m| filter_message(m, allowed, observe) | acc),
        message => filter_message(message, allowed, observe),
    }
}

fn filter_message(
    message: &mut Value,
    allowed: &dyn Fn(ListKind, &str) -> bool,
    observe: Observe<'_>,
) -> bool {
    let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) else {
        return false;
    };
    let last_page = result.get("nextCursor").is_none_or(Value::is_null);
    let mut listed = false;
    for kind in ListKind::ALL {
        let Some(items) = result.get_mut(kind.member()).and_then(Value::as_array_mut) else {
            continue;
        };
        listed = true;
        observe(kind, items, last_page);
        items.retain(|item| {
            item.get(kind.key())
                .and_then(Value::as_str)
                .is_some_and(|name| allowed(kind, name))
        });
    }
    if listed {
        result.insert("cacheScope".into(), Value::from("private"));
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::super::Names;
    use super::*;

    /// What the list filter's `may_carry` decides.
    fn may_carry_list(text: &[u8]) -> bool {
        Names::LISTS.found_in(text) || may_spell_letters(text)
    }

    #[test]
    fn the_shape_of_a_list_whatever_the_id() {
        for text in [
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
            r#"{"id":"x","result":{"nextCursor":"c","resourceTemplates":[{}]}}"#,
            r#"{"result":{"prompts":[]},"jsonrpc":"2.0"}"#,
            r#"[{"id":1,"result":{}},{"id":1,"result":{"resources":[1]}}]"#,
            r#"{"res\u0075lt":{"t\u006Fols":[]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"skills":[{"uri":"skill://a/SKILL.md"}]}}"#,
            // Duplicates: a client keeps the last, the filter sees them all.
            r#"{"result":{"tools":[]},"result":{"content":[]}}"#,
        ] {
            assert_eq!(carries_list(text.as_bytes()), Ok(true), "{text}");
        }
        for text in [
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"tools":[]}]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m","data":{"tools":[]}}}"#,
            r#"{"jsonrpc":"2.0","method":"x","params":{"tools":[]}}"#,
            r#"{"result":[{"tools":[]}]}"#,
            r#"[1,"a",{}]"#,
            r#""text""#,
            "{}",
            "[]",
        ] {
            assert_eq!(carries_list(text.as_bytes()), Ok(false), "{text}");
        }
        for text in [
            "{",
            r#"{"result":{"tools":[]}} {}"#,
            r#"{"result":{"tools":[NaN]}}"#,
        ] {
            assert!(carries_list(text.as_bytes()).is_err(), "{text}");
        }
    }

    #[test]
    fn the_prefilter_sees_every_spelling_of_a_name() {
        for text in [
            r#"{"result":{"tools":[]}}"#,
            r#"{"result":{"prompts":[]}}"#,
            r#"{"result":{"resources":[]}}"#,
            r#"{"result":{"resourceTemplates":[]}}"#,
            r#"{"result":{"skills":[]}}"#,
            // Escapes that spell letters, strictly or leniently.
            r#"{"result":{"t\u006fols":[]}}"#,
            r#"{"result":{"t\u006Fols":[]}}"#,
            r#"{"result":{"t\x6fols":[]}}"#,
            r#"{"result":{"t\o\ols":[]}}"#,
            "{\"result\":{\"to\\\nols\":[]}}",
            r#"{"a":"\"#,
            // UTF-16: NULs between the letters.
            "{\0\"\0t\0o\0o\0l\0s\0\"\0",
        ] {
            assert!(may_carry_list(text.as_bytes()), "{text:?}");
        }
        for text in [
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"42"}],"isError":false}}"#,
            // The fixed escapes spell no letter; `\\u0074` is a backslash
            // and the text `u0074`.
            r#"{"result":{"content":[{"text":"{\"a\":\"b\\c\/d\b\f\n\r\t\\u0074\"}"}]}}"#,
            // Not JSON, but without a name no reader finds a list.
            r#"{"result":{"content":"#,
            "",
        ] {
            assert!(!may_carry_list(text.as_bytes()), "{text:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// [`may_spell_letters`] spelled out, one byte at a time.
        fn spells_letters(text: &[u8]) -> bool {
            let mut i = 0;
            while i < text.len() {
                match (text[i], text.get(i + 1)) {
                    (0, _) => return true,
                    (b'\\', Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')) => i += 2,
                    (b'\\', _) => return true,
                    _ => i += 1,
                }
            }
            false
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            /// The block search answers as the plain one, on texts dense
            /// with backslashes, fixed escapes' letters and NULs, at every
            /// length and offset.
            #[test]
            fn spelling_letters_is_found_as_one_byte_at_a_time(
                pieces in proptest::collection::vec(
                    prop_oneof![
                        Just("\\"), Just("\\\\"), Just("\\\""), Just("\\n"), Just("\\u"),
                        Just("\0"), Just("x"), Just("n"), Just("\""), Just("abcdefgh"),
                    ],
                    0..48,
                )
            ) {
                let text = pieces.concat();
                prop_assert_eq!(may_spell_letters(text.as_bytes()), spells_letters(text.as_bytes()));
            }

            #[test]
            fn spelling_letters_on_any_bytes(text in proptest::collection::vec(any::<u8>(), 0..70)) {
                prop_assert_eq!(may_spell_letters(&text), spells_letters(&text));
            }
        }

        const NAMES: [&str; 9] = [
            "result",
            "tools",
            "prompts",
            "resources",
            "resourceTemplates",
            "skills",
            "content",
            "id",
            "name",
        ];

        /// A member name as a writer may spell it: each character as it
        /// is, or escaped as `\u` with lower or upper case hex digits.
        fn name() -> impl Strategy<Value = String> {
            proptest::sample::select(NAMES.to_vec()).prop_flat_map(|name| {
                proptest::collection::vec(0..3u8, name.len()).prop_map(move |how| {
                    name.chars()
                        .zip(how)
                        .map(|(c, how)| match how {
                            0 => c.to_string(),
                            1 => format!("\\u{:04x}", u32::from(c)),
                            _ => format!("\\u{:04X}", u32::from(c)),
                        })
                        .collect()
                })
            })
        }

        fn value() -> impl Strategy<Value = String> {
            let leaf = proptest::sample::select(vec![
                "1",
                "null",
                r#""plain""#,
                r#""tools""#,
                r#""a \"quoted\" \\ line\n""#,
                r#""\\u0074ools""#,
                r#""\u00e9""#,
            ])
            .prop_map(str::to_owned);
            leaf.prop_recursive(4, 48, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4)
                        .prop_map(|items| format!("[{}]", items.join(","))),
                    proptest::collection::vec((name(), inner), 0..4).prop_map(object),
                ]
            })
        }

        fn object(members: Vec<(String, String)>) -> String {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", members.join(","))
        }

        /// An object shaped like a result: members of any name, often
        /// arrays.
        fn result() -> impl Strategy<Value = String> {
            let member = prop_oneof![
                proptest::collection::vec(value(), 0..3)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                value(),
            ];
            proptest::collection::vec((name(), member), 0..3).prop_map(object)
        }

        /// A message whose members have any of the names above, or a batch.
        fn messages() -> impl Strategy<Value = String> {
            let message = proptest::collection::vec((name(), prop_oneof![result(), value()]), 0..4)
                .prop_map(object)
                .boxed();
            prop_oneof![
                message.clone(),
                proptest::collection::vec(message, 1..4)
                    .prop_map(|batch| format!("[{}]", batch.join(","))),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// Whatever the spelling, a text that serde_json (rmcp's
            /// reader) reads as a list result is one to the scanner, and
            /// the prefilter never lets it pass unparsed.
            #[test]
            fn no_list_passes_the_prefilter(text in messages()) {
                let mut value: Value = serde_json::from_str(&text).unwrap();
                let listed = filter(&mut value, &|_, _| true, &|_, _, _| {});
                let scanned = carries_list(text.as_bytes()).unwrap();
                // The scanner also sees duplicates serde_json drops.
                prop_assert!(scanned || !listed, "{}", text);
                prop_assert!(may_carry_list(text.as_bytes()) || !scanned, "{}", text);
            }
        }
    }

    #[test]
    fn filtering_keeps_what_is_allowed_and_marks_it_private() {
        let mut v = serde_json::json!({"id":1,"result":{"tools":[{"name":"a"},{"name":"b"},{"x":1},"c"],"cacheScope":"public","ttlMs":5}});
        let seen = std::cell::RefCell::new(Vec::new());
        let observe = |kind: ListKind, items: &[Value], last: bool| {
            seen.borrow_mut().push((kind, items.len(), last))
        };
        assert!(filter(
            &mut v,
            &|kind, name| kind == ListKind::Tools && name == "a",
            &observe
        ));
        assert_eq!(*seen.borrow(), [(ListKind::Tools, 4, true)]);
        assert_eq!(
            v,
            serde_json::json!({"id":1,"result":{"tools":[{"name":"a"}],"cacheScope":"private","ttlMs":5}})
        );
        let mut other = serde_json::json!({"id":1,"result":{"content":[]}});
        assert!(!filter(&mut other, &|_, _| false, &observe));
        // A page with a cursor is not a listing's last.
        let mut page = serde_json::json!({"result":{"skills":[{"uri":"skill://a/SKILL.md"}],"nextCursor":"c"}});
        assert!(filter(&mut page, &|_, _| true, &observe));
        assert_eq!(seen.borrow()[1], (ListKind::Skills, 1, false));
        assert_eq!(other, serde_json::json!({"id":1,"result":{"content":[]}}));
    }
}
