//! [`TemplateIndex`]: URI templates looked up by their literal prefix and
//! suffix, so deciding a URI against many templates tries only the few that
//! could match it.

use std::collections::HashMap;

use super::uri_template::UriTemplate;
use crate::fx_hash::FxBuild;

/// The index's maps hash a slice of the URI per probe: FxHash, not
/// SipHash. Only the configured templates are inserted; a caller picks
/// only what is looked up, so it cannot fill one bucket (no hash flooding).
type FxMap<K, V> = HashMap<K, V, FxBuild>;

/// Which template decides a URI that several templates match.
///
/// The policy must judge a `resources/read` by the template the **server**
/// serves it from, so this follows the server's own routing:
///
/// | server | precedence |
/// | --- | --- |
/// | a handler that picks the most specific template (the crate's default, and the usual hand-written `read_resource` on rmcp) | [`MostSpecific`](Self::MostSpecific) |
/// | a router that tries its templates in the order they were registered (tower-mcp 0.25) | [`FirstRegistered`](Self::FirstRegistered), with the policy's templates given in the server's order |
///
/// # Example
///
/// ```
/// use tower_mcp_auth::mcp::{TemplateIndex, TemplatePrecedence, UriTemplate};
///
/// let templates = || {
///     ["notes://{owner}/{name}", "notes://{owner}/shared"]
///         .into_iter()
///         .map(|t| (UriTemplate::parse(t).unwrap(), t))
/// };
/// let specific = TemplateIndex::new(templates());
/// assert_eq!(specific.find("notes://ann/shared"), Some(&"notes://{owner}/shared"));
/// let ordered = TemplateIndex::with_precedence(templates(), TemplatePrecedence::FirstRegistered);
/// assert_eq!(ordered.find("notes://ann/shared"), Some(&"notes://{owner}/{name}"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplatePrecedence {
    /// The most specific matching template: most literal characters, then
    /// fewest variables, then the one registered first.
    #[default]
    MostSpecific,
    /// The first matching template in registration order.
    FirstRegistered,
}

/// URI templates and a value for each, indexed by literal prefix and
/// suffix.
///
/// [`TemplateIndex`]: URI templates looked up by their literal prefix and
/// suffix, so deciding a URI against many templates tries only the few that
/// could match it.
///
/// # How a URI is decided
///
/// Every URI a template matches starts with the template's literal prefix
/// (the text before its first variable, scheme included) and ends with its
/// literal suffix (the text after its last variable). The index groups the
/// templates by prefix, then by suffix. A lookup takes each distinct prefix
/// length, looks that many leading bytes of the URI up, and in the group it
/// finds, each distinct suffix length likewise; only the templates of the
/// groups found are matched. The cost grows with the number of distinct
/// prefix and suffix lengths (a few dozen at most for real template sets)
/// and with the size of the groups found, not with the number of templates.
/// Templates that share both their prefix and their suffix
/// (`a://{x}/one/{y}`, `a://{x}/two/{y}`) are tried one by one.
///
/// # Precedence
///
/// By default, as [`UriTemplate`] describes: the most specific
/// matching template wins (most literal characters, then fewest variables,
/// then the one registered first); [`with_precedence`](Self::with_precedence)
/// can make it the first registered instead ([`TemplatePrecedence`]). The
/// index keeps the templates in that order and a lookup returns the first
/// one in it that matches, whichever group it is in; a URI equal to a
/// template's own text (a completion names the template) matches that
/// template.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::mcp::{TemplateIndex, UriTemplate};
///
/// let index = TemplateIndex::new(
///     ["user://{id}/{section}", "user://{id}/private", "file:///{path}"]
///         .into_iter()
///         .map(|t| (UriTemplate::parse(t).unwrap(), t)),
/// );
/// assert_eq!(index.find("user://42/private"), Some(&"user://{id}/private"));
/// assert_eq!(index.find("user://42/public"), Some(&"user://{id}/{section}"));
/// assert_eq!(index.find("file:///etc"), Some(&"file:///{path}"));
/// assert_eq!(index.find("mail://x"), None);
/// ```
#[derive(Debug)]
pub struct TemplateIndex<T> {
    /// In precedence order: most specific first, or as registered.
    entries: Vec<(UriTemplate, T)>,
    by_prefix: FxMap<Box<str>, Group>,
    /// The distinct prefix lengths, ascending.
    prefix_lens: Vec<Len>,
}

/// One distinct length of the prefixes (or of one group's suffixes), with
/// the bytes they start and end with: a URI whose bytes at those places are
/// not among them is passed over without hashing it.
#[derive(Debug)]
struct Len {
    len: usize,
    first: ByteSet,
    last: ByteSet,
}

#[derive(Debug, Default, Clone, Copy)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

impl Len {
    /// The distinct lengths of `texts`, ascending, with their end bytes.
    fn of<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<Len> {
        let mut lens: Vec<Len> = Vec::new();
        for text in texts {
            let i = match lens.binary_search_by_key(&text.len(), |l| l.len) {
                Ok(i) => i,
                Err(i) => {
                    lens.insert(
                        i,
                        Len {
                            len: text.len(),
                            first: ByteSet::default(),
                            last: ByteSet::default(),
                        },
                    );
                    i
                }
            };
            if let (Some(&first), Some(&last)) = (text.as_bytes().first(), text.as_bytes().last()) {
                lens[i].first.insert(first);
                lens[i].last.insert(last);
            }
        }
        lens
    }

    /// Whether `part` (of this length) may be one of the texts.
    fn may_be(&self, part: &[u8]) -> bool {
        match (part.first(), part.last()) {
            (Some(&first), Some(&last)) => self.first.contains(first) && self.last.contains(last),
            _ => true,
        }
    }
}

/// The templates that share one literal prefix.
#[derive(Debug, Default)]
struct Group {
    /// Positions in `entries`, ascending (most specific first).
    by_suffix: FxMap<Box<str>, Vec<usize>>,
    /// The distinct suffix lengths, ascending.
    suffix_lens: Vec<Len>,
}

impl<T> TemplateIndex<T> {
    /// Indexes `templates`, ordering them from most to least specific
    /// (registration order breaks ties).
    pub fn new(templates: impl IntoIterator<Item = (UriTemplate, T)>) -> Self {
        Self::with_precedence(templates, TemplatePrecedence::MostSpecific)
    }

    /// Indexes `templates` for the given [`TemplatePrecedence`].
    pub fn with_precedence(
        templates: impl IntoIterator<Item = (UriTemplate, T)>,
        precedence: TemplatePrecedence,
    ) -> Self {
        let mut entries: Vec<_> = templates.into_iter().collect();
        if precedence == TemplatePrecedence::MostSpecific {
            // Stable: equal specificity keeps registration order.
            entries.sort_by_key(|(t, _)| t.specificity_key());
        }
        let mut by_prefix: FxMap<Box<str>, Group> = FxMap::default();
        for (i, (t, _)) in entries.iter().enumerate() {
            let group = by_prefix.entry(t.literal_prefix().into()).or_default();
            group
                .by_suffix
                .entry(t.literal_suffix().into())
                .or_default()
                .push(i);
        }
        let prefix_lens = Len::of(by_prefix.keys().map(|p| &**p));
        for group in by_prefix.values_mut() {
            group.suffix_lens = Len::of(group.by_suffix.keys().map(|s| &**s));
        }
        Self {
            entries,
            by_prefix,
            prefix_lens,
        }
    }

    /// The value of the template that matches `uri` (or whose text is
    /// `uri`) and comes first by the index's precedence. Allocates nothing.
    #[must_use]
    pub fn find(&self, uri: &str) -> Option<&T> {
        let mut best = usize::MAX;
        for plen in &self.prefix_lens {
            let Some(prefix) = uri.get(..plen.len) else {
                if plen.len > uri.len() {
                    break;
                }
                continue; // not a character boundary of `uri`
            };
            if !plen.may_be(prefix.as_bytes()) {
                continue;
            }
            let Some(group) = self.by_prefix.get(prefix) else {
                continue;
            };
            let rest = uri.len() - plen.len;
            for slen in &group.suffix_lens {
                if slen.len > rest {
                    break;
                }
                let Some(candidates) = uri
                    .get(uri.len() - slen.len..)
                    .filter(|suffix| slen.may_be(suffix.as_bytes()))
                    .and_then(|suffix| group.by_suffix.get(suffix))
                else {
                    continue;
                };
                // Ascending: the first match is this group's best.
                for &i in candidates.iter().take_while(|&&i| i < best) {
                    let t = &self.entries[i].0;
                    if t.as_str() == uri || t.matches(uri) {
                        best = i;
                        break;
                    }
                }
            }
        }
        self.entries.get(best).map(|(_, v)| v)
    }

    /// How many templates the index holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index holds no template.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The templates and their values, most specific first.
    pub fn iter(&self) -> impl Iterator<Item = (&UriTemplate, &T)> {
        self.entries.iter().map(|(t, v)| (t, v))
    }
}

impl<T> Default for TemplateIndex<T> {
    fn default() -> Self {
        Self::new([])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(templates: &[&str]) -> TemplateIndex<usize> {
        TemplateIndex::new(
            templates
                .iter()
                .enumerate()
                .map(|(i, t)| (UriTemplate::parse(t).unwrap(), i)),
        )
    }

    /// What the policy did before the index: the first template, in
    /// specificity order, that matches.
    fn linear(templates: &[&str], uri: &str) -> Option<usize> {
        let mut sorted: Vec<(UriTemplate, usize)> = templates
            .iter()
            .enumerate()
            .map(|(i, t)| (UriTemplate::parse(t).unwrap(), i))
            .collect();
        sorted.sort_by_key(|(t, _)| t.specificity_key());
        sorted
            .into_iter()
            .find(|(t, _)| t.as_str() == uri || t.matches(uri))
            .map(|(_, i)| i)
    }

    #[test]
    fn the_more_specific_template_wins_across_groups() {
        let t = [
            "user://{id}/{section}",  // prefix user://, no suffix
            "user://{id}/private",    // prefix user://, suffix /private
            "{scheme}://{host}/x",    // no prefix, suffix /x
            "user://admin/{section}", // longer prefix
            "user://{id}/private",    // same text twice: never reached here
        ];
        let idx = index(&t);
        assert_eq!(idx.find("user://42/private"), Some(&1));
        assert_eq!(idx.find("user://42/public"), Some(&0));
        assert_eq!(
            idx.find("user://admin/private"),
            Some(&1),
            "15 literals > 13"
        );
        assert_eq!(idx.find("user://admin/public"), Some(&3), "13 literals > 8");
        assert_eq!(idx.find("user://42/x"), Some(&0), "8 literals > 5");
        assert_eq!(idx.find("mail://h/x"), Some(&2));
        assert_eq!(idx.find("mail://h/y"), None);
        assert_eq!(idx.find("user://{id}/private"), Some(&1), "its own text");
        assert_eq!(idx.find(""), None);
        assert_eq!(idx.len(), 5);
    }

    #[test]
    fn first_registered_follows_the_order_given() {
        let ts = ["u://{a}/{b}", "u://{a}/x", "u://{a}/x{c}"];
        let index = TemplateIndex::with_precedence(
            ts.iter()
                .enumerate()
                .map(|(i, t)| (UriTemplate::parse(t).unwrap(), i)),
            TemplatePrecedence::FirstRegistered,
        );
        // The broad template was registered first: it takes every URI it
        // matches, where the default would pick a more specific one.
        assert_eq!(index.find("u://1/x"), Some(&0));
        assert_eq!(index.find("u://1/xy"), Some(&0));
        assert_eq!(index.find("u://1/y/z"), None);
        assert_eq!(
            TemplateIndex::new(
                ts.iter()
                    .enumerate()
                    .map(|(i, t)| (UriTemplate::parse(t).unwrap(), i)),
            )
            .find("u://1/x"),
            Some(&1)
        );
    }

    #[test]
    fn ties_keep_registration_order() {
        let idx = index(&["a://{x}/b", "a://b/{x}"]);
        assert_eq!(idx.find("a://b/b"), Some(&0));
        let idx = index(&["a://b/{x}", "a://{x}/b"]);
        assert_eq!(idx.find("a://b/b"), Some(&0));
    }

    #[test]
    fn multi_byte_uris_never_split_a_character() {
        let idx = index(&["é://{x}", "ab{x}ü"]);
        assert_eq!(idx.find("é://1"), Some(&0));
        assert_eq!(idx.find("ü://1"), None);
        assert_eq!(idx.find("ab1ü"), Some(&1));
        assert_eq!(idx.find("abü"), None);
        assert_eq!(idx.find("€"), None);
    }

    #[test]
    fn agrees_with_a_linear_scan() {
        // A small deterministic generator: templates and URIs over a tiny
        // alphabet, so that many of them overlap.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let pieces = ["a", "b", "/", ":", "é", "ab", "://"];
        let text = |vars: bool, next: &mut dyn FnMut(u64) -> u64| {
            let mut s = String::new();
            let mut last_var = false;
            for _ in 0..1 + next(6) {
                if vars && !last_var && next(3) == 0 {
                    s.push_str("{v}");
                    last_var = true;
                } else {
                    s.push_str(pieces[next(pieces.len() as u64) as usize]);
                    last_var = false;
                }
            }
            s
        };
        for _ in 0..300 {
            let templates: Vec<String> = (0..1 + next(12))
                .map(|_| text(true, &mut next))
                .filter(|t| t.contains('{'))
                .collect();
            let refs: Vec<&str> = templates.iter().map(String::as_str).collect();
            let idx = index(&refs);
            for _ in 0..40 {
                let uri = if next(4) == 0 && !refs.is_empty() {
                    refs[next(refs.len() as u64) as usize].to_owned()
                } else {
                    text(false, &mut next)
                };
                assert_eq!(
                    idx.find(&uri).copied(),
                    linear(&refs, &uri),
                    "{uri:?} against {refs:?}"
                );
            }
        }
    }
}
