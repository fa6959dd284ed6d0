//! The member names the reply rewriters look for, searched in one pass
//! over a text however many rewriters read it.
//!
//! A reply of an exchange that [`McpAuth`](crate::stack::McpAuth) guards
//! is searched for the list filter's names and the handle binding's
//! together: one vectored multi-pattern search (Teddy, from
//! `aho-corasick`) in place of one search per name, each of which pays
//! its set-up again on a short body.

use std::sync::LazyLock;

use aho_corasick::packed;
use memchr::memmem::Finder;

/// A set of the names the rewriters look for. Found in a text when any
/// of its names is there as written, anywhere (in a member name, in a
/// string, in an escaped JSON text), as a search of the bytes finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Names(u8);

/// The start of each result member holding a list: `tools`, `prompts`,
/// `resource` (of `resources` and `resourceTemplates`), `skills`.
const LIST_NAMES: [&str; 4] = ["tools", "prompts", "resource", "skills"];
/// The members that carry a handle: `requestState`, `taskId`.
const HANDLE_NAMES: [&str; 2] = ["requestState", "taskId"];

impl Names {
    /// No name: a rewriter that looks only for texts of its own.
    #[cfg(test)]
    pub(crate) const NONE: Self = Self(0);
    /// The list filter's: the start of each list result's member name,
    /// `tools`, `prompts`, `resource` (the start of `resources` and
    /// `resourceTemplates`) or `skills`. Found with
    /// [`may_spell_letters`](super::may_spell_letters) (the list filter's
    /// `may_carry`), the fast answer for most replies, which then go on
    /// unparsed.
    ///
    /// A name can only be there when the text holds one as it is, or an
    /// escape that may stand for a letter: anything but the fixed `\"`,
    /// `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t` (a `\u0074`, or a lenient
    /// reader's `\x74` or `\o`), or a NUL byte (UTF-16 and UTF-32 texts
    /// spell names with NULs between the letters). Whatever else the text
    /// is, valid JSON or not, no reader finds a list in it when both say
    /// no: `false` from both implies that `shape::carries_list` is not
    /// `Ok(true)`.
    pub(crate) const LISTS: Self = Self(1);
    /// The handle binding's: `requestState` and `taskId`, the members
    /// that carry a handle (with an escape that may spell a letter, all a
    /// request or a reply can hold one by).
    pub(crate) const HANDLES: Self = Self(2);

    /// The names of both sets.
    pub(crate) const fn and(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether `text` holds any of these names as written.
    pub(crate) fn found_in(self, text: &[u8]) -> bool {
        // Each set's searcher is built once: building one costs more than
        // searching a small body.
        static LISTS: LazyLock<Searcher> = LazyLock::new(|| Searcher::new(&LIST_NAMES));
        static HANDLES: LazyLock<Searcher> = LazyLock::new(|| Searcher::new(&HANDLE_NAMES));
        static BOTH: LazyLock<Searcher> = LazyLock::new(|| {
            let both: Vec<&str> = LIST_NAMES.iter().chain(&HANDLE_NAMES).copied().collect();
            Searcher::new(&both)
        });
        match self.0 {
            0 => false,
            1 => LISTS.found_in(text),
            2 => HANDLES.found_in(text),
            _ => BOTH.found_in(text),
        }
    }
}

/// One pass for several names where the CPU has the vector instructions
/// Teddy needs (x86-64 with SSSE3 or AVX2, aarch64); a search per name
/// elsewhere.
enum Searcher {
    Packed(packed::Searcher),
    Each(Vec<Finder<'static>>),
}

impl Searcher {
    fn new(names: &[&str]) -> Self {
        packed::Searcher::new(names.iter().copied()).map_or_else(|| Self::each(names), Self::Packed)
    }

    fn each(names: &[&str]) -> Self {
        Self::Each(
            names
                .iter()
                .map(|n| Finder::new(n.as_bytes()).into_owned())
                .collect(),
        )
    }

    fn found_in(&self, text: &[u8]) -> bool {
        match self {
            Self::Packed(s) => s.find(text).is_some(),
            Self::Each(finders) => finders.iter().any(|f| f.find(text).is_some()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(set: Names) -> Vec<&'static str> {
        let mut names = Vec::new();
        if set.0 & Names::LISTS.0 != 0 {
            names.extend(LIST_NAMES);
        }
        if set.0 & Names::HANDLES.0 != 0 {
            names.extend(HANDLE_NAMES);
        }
        names
    }

    /// What a search of the bytes for each name answers.
    fn naive(set: Names, text: &[u8]) -> bool {
        names_of(set)
            .iter()
            .any(|n| text.windows(n.len()).any(|w| w == n.as_bytes()))
    }

    const SETS: [Names; 4] = [
        Names::NONE,
        Names::LISTS,
        Names::HANDLES,
        Names::LISTS.and(Names::HANDLES),
    ];

    #[test]
    fn each_name_is_found_anywhere_and_nothing_else() {
        let mut texts: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"t".to_vec(),
            b"tool".to_vec(),
            b"taskI".to_vec(),
            b"requestStat".to_vec(),
            b"Tools TASKID requeststate".to_vec(),
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"status\":\"success\"}"}],"isError":false}}"#.to_vec(),
        ];
        for name in LIST_NAMES.iter().chain(&HANDLE_NAMES) {
            for (before, after) in [("", ""), ("x", ""), ("", "x"), ("\\\"", "\\\"")] {
                texts.push(format!("{before}{name}{after}").into_bytes());
                // Far into a long text, past any vector block boundary.
                for pad in [15, 16, 31, 32, 33, 300] {
                    let fill = "a".repeat(pad);
                    texts.push(format!("{fill}{before}{name}{after}{fill}").into_bytes());
                }
            }
            // Cut short by one byte, at the end: not there.
            texts.push(format!("{}{}", "b".repeat(40), &name[..name.len() - 1]).into_bytes());
        }
        for text in &texts {
            for set in SETS {
                let want = naive(set, text);
                assert_eq!(
                    set.found_in(text),
                    want,
                    "{set:?} in {:?}",
                    String::from_utf8_lossy(text)
                );
                let names = names_of(set);
                if !names.is_empty() {
                    assert_eq!(Searcher::each(&names).found_in(text), want);
                    assert_eq!(Searcher::new(&names).found_in(text), want);
                }
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// Every set answers as a search of the bytes for each of its
            /// names, on texts of names, parts of names and filler, at
            /// every length and offset (across the vector blocks).
            #[test]
            fn a_set_is_found_as_each_name_is(
                pieces in proptest::collection::vec(
                    prop_oneof![
                        Just("tools"), Just("tool"), Just("ools"), Just("prompts"),
                        Just("prompt"), Just("resource"), Just("resourc"), Just("skills"),
                        Just("skill"), Just("requestState"), Just("requestStat"),
                        Just("taskId"), Just("taskI"), Just("askId"), Just("t"), Just("s"),
                        Just("\\\""), Just("x"), Just("abcdefghijklmnop"),
                    ],
                    0..80,
                ),
                set in prop_oneof![
                    Just(Names::LISTS),
                    Just(Names::HANDLES),
                    Just(Names::LISTS.and(Names::HANDLES)),
                ],
            ) {
                let text = pieces.concat();
                let want = naive(set, text.as_bytes());
                prop_assert_eq!(set.found_in(text.as_bytes()), want);
                prop_assert_eq!(Searcher::each(&names_of(set)).found_in(text.as_bytes()), want);
            }

            #[test]
            fn a_set_is_found_as_each_name_is_in_any_bytes(
                text in proptest::collection::vec(
                    prop_oneof![any::<u8>(), Just(b't'), Just(b'o'), Just(b's')],
                    0..200,
                ),
            ) {
                let set = Names::LISTS.and(Names::HANDLES);
                prop_assert_eq!(set.found_in(&text), naive(set, &text));
            }
        }
    }

    #[test]
    fn the_union_finds_what_either_set_finds() {
        let both = Names::LISTS.and(Names::HANDLES);
        for text in [&b"...skills..."[..], b"...taskId...", b"...neither..."] {
            assert_eq!(
                both.found_in(text),
                Names::LISTS.found_in(text) || Names::HANDLES.found_in(text)
            );
        }
        assert_eq!(Names::NONE.and(Names::LISTS), Names::LISTS);
    }
}
