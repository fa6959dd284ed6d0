//! RFC 6570 level-1 URI templates (`user://{user_id}/private`), matched
//! against concrete resource URIs.

use std::fmt;

use crate::config::ConfigError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Lit(char),
    Var,
}

/// A parsed RFC 6570 level-1 URI template.
///
/// RFC 6570 level-1 URI templates (`user://{user_id}/private`), matched
/// against concrete resource URIs.
///
/// # Matching
///
/// A template is a sequence of literal characters and `{name}` variables.
/// A literal matches itself; a variable matches **one or more** characters
/// other than `/`, `?` and `#` (a level-1 expansion percent-encodes every
/// reserved character, so a value never spans a path segment; accepting the
/// other reserved characters unencoded keeps a lenient client's URI under
/// the template's rule rather than the default). The literal text before
/// the first variable and after the last one is compared directly; what
/// lies between is an NFA simulation: linear in the URI's length times the
/// template's length, with no backtracking, whatever the input, and no
/// allocation unless the template has more than 127 characters between
/// its first and last variable.
///
/// # Specificity
///
/// When several templates match, the **most specific** wins: the one with
/// the most literal characters; on a tie, the one with fewer variables; on
/// a tie again, the one registered first. A resource registered without
/// any variable is an exact URI and beats every template.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::mcp::UriTemplate;
///
/// let t = UriTemplate::parse("user://{user_id}/private").unwrap();
/// assert!(t.matches("user://42/private"));
/// assert!(!t.matches("user:///private"));       // a variable is never empty
/// assert!(!t.matches("user://4/2/private"));    // nor spans a `/`
/// assert_eq!(t.literal_len(), "user:///private".len());
/// assert_eq!((t.literal_prefix(), t.literal_suffix()), ("user://", "/private"));
/// assert!(UriTemplate::parse("user://{+path}").is_err()); // level 2: refused
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UriTemplate {
    source: String,
    tokens: Vec<Token>,
    vars: usize,
    /// Bytes of `source` before the first variable.
    prefix: usize,
    /// Bytes of `source` after the last variable.
    suffix: usize,
}

/// The NFA states that fit in the matcher's stack buffer (two words).
const INLINE_STATES: usize = 128;

impl UriTemplate {
    /// Parses a template.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for an unclosed or stray brace, an empty or
    /// malformed variable name, an operator of a higher level (`{+x}`,
    /// `{#x}`, `{/x}`, …), a modifier (`{x*}`, `{x:3}`), a list of variables
    /// (`{x,y}`), two variables side by side (`{a}{b}`, ambiguous), or an
    /// empty template.
    pub fn parse(source: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| {
            ConfigError::Invalid(format!(
                "resource template `{source}`: {why} (only RFC 6570 level-1 `{{name}}` variables are supported)"
            ))
        };
        if source.is_empty() {
            return Err(bad("empty template"));
        }
        let mut tokens = Vec::with_capacity(source.len());
        let mut vars = 0;
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            None => return Err(bad("unclosed `{`")),
                            Some('}') => break,
                            Some(c) => name.push(c),
                        }
                    }
                    if name.is_empty() {
                        return Err(bad("empty variable `{}`"));
                    }
                    let first = name.chars().next().unwrap_or_default();
                    if "+#./;?&=,!@|".contains(first) {
                        return Err(bad("operators are level 2 and above"));
                    }
                    if name.contains(',') || name.contains('*') || name.contains(':') {
                        return Err(bad("variable lists and modifiers are level 4"));
                    }
                    let valid = name.split('.').all(|part| {
                        !part.is_empty()
                            && part
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '%')
                    });
                    if !valid {
                        return Err(bad("variable names are letters, digits, `_` and `.`"));
                    }
                    if tokens.last() == Some(&Token::Var) {
                        return Err(bad("two variables side by side are ambiguous"));
                    }
                    tokens.push(Token::Var);
                    vars += 1;
                }
                '}' => return Err(bad("stray `}`")),
                c => tokens.push(Token::Lit(c)),
            }
        }
        let prefix = source.find('{').unwrap_or(source.len());
        let suffix = source.rfind('}').map_or(0, |end| source.len() - end - 1);
        Ok(Self {
            source: source.to_owned(),
            tokens,
            vars,
            prefix,
            suffix,
        })
    }

    /// The literal text before the first variable (the whole template when
    /// it has none). Every URI the template matches starts with it.
    #[must_use]
    pub fn literal_prefix(&self) -> &str {
        &self.source[..self.prefix]
    }

    /// The literal text after the last variable (empty when it has none).
    /// Every URI the template matches ends with it.
    #[must_use]
    pub fn literal_suffix(&self) -> &str {
        if self.vars == 0 {
            return "";
        }
        &self.source[self.source.len() - self.suffix..]
    }

    /// The template as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// How many literal characters the template has (its specificity).
    #[must_use]
    pub fn literal_len(&self) -> usize {
        self.tokens.len() - self.vars
    }

    /// How many variables the template has.
    #[must_use]
    pub fn var_count(&self) -> usize {
        self.vars
    }

    /// Whether the template has no variable (it is an exact URI).
    #[must_use]
    pub fn is_exact(&self) -> bool {
        self.vars == 0
    }

    /// Whether `uri` is an expansion of this template.
    #[must_use]
    pub fn matches(&self, uri: &str) -> bool {
        if self.vars == 0 {
            return uri == self.source;
        }
        let (prefix, suffix) = (self.literal_prefix(), self.literal_suffix());
        // Each variable takes at least one character.
        if uri.len() < prefix.len() + suffix.len() + self.vars
            || !uri.starts_with(prefix)
            || !uri.ends_with(suffix)
        {
            return false;
        }
        let Some(middle) = uri.get(prefix.len()..uri.len() - suffix.len()) else {
            return false;
        };
        // The tokens from the first variable to the last one.
        let first = prefix.chars().count();
        let last = self.tokens.len()
            - self.source[self.source.len() - self.suffix..]
                .chars()
                .count();
        let tokens = &self.tokens[first..last];
        let words = (tokens.len() + 1).div_ceil(64);
        if tokens.len() < INLINE_STATES {
            let mut buf = [0u64; 4 * INLINE_STATES / 64];
            run(tokens, middle, &mut buf[..4 * words])
        } else {
            run(tokens, middle, &mut vec![0u64; 4 * words])
        }
    }

    /// Orders templates from most to least specific: more literal
    /// characters first, then fewer variables.
    pub(crate) fn specificity_key(&self) -> (std::cmp::Reverse<usize>, usize) {
        (std::cmp::Reverse(self.literal_len()), self.vars)
    }
}

/// The NFA simulation over `tokens` (which start and end with a variable)
/// and `input`. `state` holds four bitsets of `tokens.len() + 1` bits,
/// zeroed: the current states, the next ones, and for each variable
/// whether it has taken a character and may take more (current, next).
/// State `i`: the tokens before `i` have matched the input so far.
fn run(tokens: &[Token], input: &str, state: &mut [u64]) -> bool {
    let n = tokens.len();
    let words = state.len() / 4;
    let (cur, rest) = state.split_at_mut(words);
    let (next, rest) = rest.split_at_mut(words);
    let (in_var, next_var) = rest.split_at_mut(words);
    let (mut cur, mut next, mut in_var, mut next_var) = (cur, next, in_var, next_var);
    let get = |set: &[u64], i: usize| set[i / 64] & (1 << (i % 64)) != 0;
    let set = |set: &mut [u64], i: usize| set[i / 64] |= 1 << (i % 64);
    set(cur, 0);
    for c in input.chars() {
        next.fill(0);
        next_var.fill(0);
        let mut any = false;
        for (i, token) in tokens.iter().enumerate() {
            match *token {
                Token::Lit(l) => {
                    if l == c && get(cur, i) {
                        set(next, i + 1);
                        any = true;
                    }
                }
                Token::Var => {
                    if (get(cur, i) || get(in_var, i)) && !matches!(c, '/' | '?' | '#') {
                        set(next_var, i);
                        set(next, i + 1);
                        any = true;
                    }
                }
            }
        }
        if !any {
            return false;
        }
        std::mem::swap(&mut cur, &mut next);
        std::mem::swap(&mut in_var, &mut next_var);
    }
    get(cur, n)
}

impl fmt::Debug for UriTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UriTemplate").field(&self.source).finish()
    }
}

impl fmt::Display for UriTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_level_one_and_refuses_the_rest() {
        for ok in [
            "user://{user_id}/private",
            "a://x",
            "a://{x}-{y}",
            "f://{a.b}",
        ] {
            assert!(UriTemplate::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a://{",
            "a://{}",
            "a://}",
            "a://{+x}",
            "a://{#x}",
            "a://{/x}",
            "a://{x,y}",
            "a://{x*}",
            "a://{x:3}",
            "a://{a}{b}",
            "a://{a b}",
            "a://{.x}",
        ] {
            let err = UriTemplate::parse(bad).unwrap_err().to_string();
            assert!(err.contains("level-1"), "{bad}: {err}");
        }
    }

    #[test]
    fn matching() {
        let t = UriTemplate::parse("user://{user_id}/private").unwrap();
        assert!(t.matches("user://42/private"));
        assert!(t.matches("user://a@b.c/private"));
        assert!(!t.matches("user:///private"));
        assert!(!t.matches("user://4/2/private"));
        assert!(!t.matches("user://42/private/x"));
        assert!(!t.matches("user://42/privat"));
        assert!(!t.matches("user://42?x/private"));
        let t = UriTemplate::parse("a://{x}-{y}").unwrap();
        assert!(t.matches("a://p-q-r"), "either split is a match");
        assert!(!t.matches("a://p-"));
        assert!(!t.matches("a://-"));
        let exact = UriTemplate::parse("admin://system/stats").unwrap();
        assert!(exact.is_exact() && exact.matches("admin://system/stats"));
        assert!(!exact.matches("admin://system/stats2"));
    }

    #[test]
    fn literal_prefix_and_suffix() {
        let t = UriTemplate::parse("user://{id}/x/{section}.json").unwrap();
        assert_eq!(
            (t.literal_prefix(), t.literal_suffix()),
            ("user://", ".json")
        );
        let t = UriTemplate::parse("{s}://é/{x}").unwrap();
        assert_eq!((t.literal_prefix(), t.literal_suffix()), ("", ""));
        let t = UriTemplate::parse("a://exact").unwrap();
        assert_eq!((t.literal_prefix(), t.literal_suffix()), ("a://exact", ""));
        // Multi-byte characters around and inside the variables.
        let t = UriTemplate::parse("ü://{x}/ß{y}€").unwrap();
        assert!(t.matches("ü://1/ß2€"));
        assert!(t.matches("ü://é/ßé€"));
        assert!(!t.matches("ü://1/ß€"));
        assert!(!t.matches("ü://€"));
    }

    #[test]
    fn long_templates_match_past_the_inline_buffer() {
        let middle = "m".repeat(300);
        let t = UriTemplate::parse(&format!("a://{{x}}/{middle}/{{y}}")).unwrap();
        assert!(t.matches(&format!("a://1/{middle}/2")));
        assert!(!t.matches(&format!("a://1/{middle}x/2")));
        let t = UriTemplate::parse(&format!("a://{{x}}{}{{y}}", "/b".repeat(40))).unwrap();
        assert!(t.matches(&format!("a://1{}2", "/b".repeat(40))));
    }

    #[test]
    fn long_adversarial_input_is_linear() {
        let t = UriTemplate::parse("a://{x}-{y}-{z}-end").unwrap();
        let uri = format!("a://{}", "-".repeat(200_000));
        let start = std::time::Instant::now();
        assert!(!t.matches(&uri));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn specificity() {
        let a = UriTemplate::parse("user://{id}/private").unwrap();
        let b = UriTemplate::parse("user://{id}/{section}").unwrap();
        assert!(a.specificity_key() < b.specificity_key());
        assert_eq!(a.literal_len(), 15);
        assert_eq!(b.var_count(), 2);
    }
}
