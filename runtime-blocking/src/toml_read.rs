//! Reading TOML files key by key: the one reader of the configuration file (the config
//! module) and of the user store (the store module).
//!
//! It owns how a key is declared ([`Key`]: its name, default, meaning, and the function that
//! reads its value and says where the value is kept), how a table is read with a list of
//! keys ([`read_keys`]), and the errors, which name the file, the key and the problem
//! ([`ConfigError`]: `wharf.toml: key 'max_line_length': 10 is out of range (128 to
//! 65536)`). Every problem is collected, not only the first, so that one run reports them
//! all; a value that is wrong leaves the default in place.
//!
//! It must not know any key: which keys exist, their bounds and where they go are the
//! config's and the store's. It reads no file but the one it is given and checks nothing
//! on disk (a key's reader may: the config checks that a log file's folder exists).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wharf_core::policy::Cidr;

/// The longest duration a `_secs` key takes (and a user's `idle_time_secs`): a year.
pub const YEAR: i64 = 365 * 86_400;

/// One problem in a configuration or store file: where (file, key) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `command line`).
    pub file: String,
    /// The key (or flag), when the problem has one; in a store, with the entry's place
    /// (`user[3].max_logins`).
    pub key: Option<String>,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl ConfigError {
    /// A problem with `key` in `file`.
    pub fn new(file: &str, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// A problem with the file as a whole.
    pub fn file(file: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            key: None,
            message: message.into(),
        }
    }

    /// A TOML syntax error in `text`, located by line and column.
    pub fn syntax(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().replace('\n', "; ");
        match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                ConfigError::file(file, format!("line {line}, column {col}: {message}"))
            }
            None => ConfigError::file(file, message),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: key '{}': {}", self.file, key, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The problems as the lines the command line prints.
pub fn messages(errors: Vec<ConfigError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// The text of the file at `path`; the error names the file.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::file(
            &path.display().to_string(),
            format!("cannot read the file: {e}"),
        )
    })
}

/// The table `text` (the file `file`) holds, or its syntax error.
pub fn parse_table(file: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse()
        .map_err(|e: toml::de::Error| ConfigError::syntax(file, text, &e))
}

/// One key of a TOML table: what the documentation says of it and how it is read.
///
/// A configuration key is one entry in a table of these (see `config::keys::KEYS`); the
/// parser, the unknown-key error and `wharf check-config --keys` all take it from there.
pub struct Key<T> {
    /// The key.
    pub name: &'static str,
    /// The default, as a TOML value (`4096`, `"1.2"`, `[]`, which the config's tests read
    /// back and compare with the real default), or in words where it is no value (`none`,
    /// `every event`).
    pub default: &'static str,
    /// What it means, in one line (Markdown).
    pub doc: &'static str,
    /// Reads the value into `T`, which says where it is kept; a problem goes to the reader
    /// (which knows the key's name) and leaves `T` as it was.
    pub read: fn(&mut Reader<'_>, &toml::Value, &mut T),
}

impl<T> Key<T> {
    /// Whether the default is a TOML value (then it is shown as code, and the config's tests
    /// read it back), not words.
    pub fn default_is_value(&self) -> bool {
        format!("v = {}", self.default)
            .parse::<toml::Table>()
            .is_ok()
    }

    /// The key of that name in `keys`.
    pub fn find<'k>(keys: &'k [Key<T>], name: &str) -> Option<&'k Key<T>> {
        keys.iter().find(|k| k.name == name)
    }

    /// The names of `keys`, comma-separated, in their order.
    pub fn names(keys: &[Key<T>]) -> String {
        keys.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
    }

    /// The problem with a name none of `keys` has: `unknown key ({intro}: a, b, c)`.
    pub fn unknown(keys: &[Key<T>], intro: &str) -> String {
        format!("unknown key ({intro}: {})", Key::names(keys))
    }
}

/// Reads every entry of `table` into `target` with the key of the same name in `keys`. The
/// entries are named `prefix.key` in errors (just `key` when `prefix` is empty); an entry
/// no key knows is an error whose message `unknown` gives for its name: the keys there are
/// ([`Key::unknown`]), or, for a key that is no more, what replaced it.
pub fn read_keys<T>(
    r: &mut Reader<'_>,
    prefix: &str,
    table: &toml::Table,
    keys: &[Key<T>],
    target: &mut T,
    unknown: fn(&str) -> String,
) {
    let outer = std::mem::take(&mut r.key);
    for (name, value) in table {
        r.key = Reader::join(prefix, name);
        match Key::find(keys, name) {
            Some(key) => (key.read)(r, value, target),
            None => r.err(unknown(name)),
        }
    }
    r.key = outer;
}

/// Stores `value`, when there is one, in `slot` (a key whose value was wrong keeps the
/// default).
pub fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Reads the values of one file's keys, collecting the problems.
#[derive(Debug)]
pub struct Reader<'a> {
    file: &'a str,
    base: &'a Path,
    /// The key being read, as errors name it.
    key: String,
    errors: Vec<ConfigError>,
}

impl<'a> Reader<'a> {
    /// A reader of the file named `file` whose relative paths are taken from `base`.
    pub fn new(file: &'a str, base: &'a Path) -> Reader<'a> {
        Reader {
            file,
            base,
            key: String::new(),
            errors: Vec::new(),
        }
    }

    /// `prefix.name`, or `name` when there is no prefix.
    pub fn join(prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    }

    /// Reads the keys that follow as `key` (for values that are tables of their own).
    pub fn at(&mut self, key: String) {
        self.key = key;
    }

    /// A problem with the key being read.
    pub fn err(&mut self, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.file, &self.key, message));
    }

    /// A problem with another key (one that is missing, or contradicts another).
    pub fn err_at(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, key, message));
    }

    /// How many problems were found so far.
    pub fn problems(&self) -> usize {
        self.errors.len()
    }

    /// Every problem found.
    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    /// A string.
    pub fn string(&mut self, v: &toml::Value) -> Option<String> {
        match v {
            toml::Value::String(s) => Some(s.clone()),
            v => {
                self.err(format!("must be a string, not {}", v.type_str()));
                None
            }
        }
    }

    /// A string that `parse` accepts; its error is the problem.
    pub fn parsed<T>(
        &mut self,
        v: &toml::Value,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.string(v)?;
        parse(&text).map_err(|m| self.err(m)).ok()
    }

    /// `true` or `false`.
    pub fn bool(&mut self, v: &toml::Value) -> Option<bool> {
        match v {
            toml::Value::Boolean(b) => Some(*b),
            v => {
                self.err(format!("must be true or false, not {}", v.type_str()));
                None
            }
        }
    }

    /// A whole number from `min` to `max`.
    pub fn int(&mut self, v: &toml::Value, min: i64, max: i64) -> Option<i64> {
        match v {
            toml::Value::Integer(i) if (min..=max).contains(i) => Some(*i),
            toml::Value::Integer(i) => {
                self.err(format!("{i} is out of range ({min} to {max})"));
                None
            }
            v => {
                self.err(format!(
                    "must be a whole number ({min} to {max}), not {}",
                    v.type_str()
                ));
                None
            }
        }
    }

    /// A whole number from `min` to `max`, as the type that keeps it (the bounds fit it).
    pub fn whole<N: TryFrom<i64>>(&mut self, v: &toml::Value, min: i64, max: i64) -> Option<N> {
        self.int(v, min, max).and_then(|i| N::try_from(i).ok())
    }

    /// Seconds, from `min` to `max`.
    pub fn secs(&mut self, v: &toml::Value, min: i64, max: i64) -> Option<Duration> {
        self.whole(v, min, max).map(Duration::from_secs)
    }

    /// Milliseconds, from `min` to `max`.
    pub fn millis(&mut self, v: &toml::Value, min: i64, max: i64) -> Option<Duration> {
        self.whole(v, min, max).map(Duration::from_millis)
    }

    /// A path, not empty; a relative one is taken from the file's folder.
    pub fn path(&mut self, v: &toml::Value) -> Option<PathBuf> {
        let s = self.string(v)?;
        if s.is_empty() {
            self.err("must not be empty");
            return None;
        }
        Some(self.base.join(s))
    }

    /// An array of strings; `example` shows the form.
    pub fn strings(&mut self, v: &toml::Value, example: &str) -> Option<Vec<String>> {
        let toml::Value::Array(list) = v else {
            self.err(format!(
                "must be an array of strings such as {example}, not {}",
                v.type_str()
            ));
            return None;
        };
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            match item {
                toml::Value::String(s) => out.push(s.clone()),
                other => {
                    self.err(format!(
                        "must be an array of strings such as {example}; it holds {}",
                        other.type_str()
                    ));
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A value or an array of values: the items, or `None` (after the error, which `what`
    /// words: "an array of strings such as [...]") when it is neither a string nor an array.
    pub fn items<'v>(&mut self, v: &'v toml::Value, what: &str) -> Option<Vec<&'v toml::Value>> {
        match v {
            toml::Value::Array(a) => Some(a.iter().collect()),
            toml::Value::String(_) => Some(vec![v]),
            v => {
                self.err(format!("must be {what}, not {}", v.type_str()));
                None
            }
        }
    }

    /// An address or CIDR network (IPv4 or IPv6), or an array of them.
    pub fn cidrs(&mut self, v: &toml::Value) -> Option<Vec<Cidr>> {
        let items = self.items(
            v,
            "an array of addresses or CIDR networks such as [\"192.0.2.0/24\", \
             \"2001:db8::/32\"]",
        )?;
        let mut out = Vec::new();
        let mut bad = false;
        for item in items {
            match item.as_str().map(Cidr::parse) {
                Some(Ok(c)) => out.push(c),
                Some(Err(e)) => {
                    bad = true;
                    self.err(e.to_string());
                }
                None => {
                    bad = true;
                    self.err(format!("must hold strings, not {}", item.type_str()));
                }
            }
        }
        (!bad).then_some(out)
    }

    /// Reads each table of the array of tables named by the key being read (`[[partner]]`)
    /// with `read`, which gets the table's place as errors name it (`partner[2]`); an item
    /// that is not a table is an error in its turn. `hint` says how to write one.
    pub fn each_table(
        &mut self,
        v: &toml::Value,
        hint: &str,
        mut read: impl FnMut(&mut Self, &str, &toml::Table),
    ) {
        let Some(items) = v.as_array() else {
            self.err(format!("must be an array of tables: {hint}"));
            return;
        };
        let key = self.key.clone();
        for (i, item) in items.iter().enumerate() {
            let place = format!("{key}[{}]", i + 1);
            match item.as_table() {
                Some(t) => read(self, &place, t),
                None => self.err_at(&place, "must be a table"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Limits {
        lines: usize,
        name: String,
    }

    const KEYS: &[Key<Limits>] = &[
        Key {
            name: "lines",
            default: "10",
            doc: "how many lines",
            read: |r, v, l| set(&mut l.lines, r.whole(v, 1, 100)),
        },
        Key {
            name: "name",
            default: "\"x\"",
            doc: "what it is called",
            read: |r, v, l| set(&mut l.name, r.string(v)),
        },
    ];

    fn read(text: &str, prefix: &str) -> (Limits, Vec<String>) {
        let table = parse_table("f.toml", text).unwrap();
        let mut r = Reader::new("f.toml", Path::new("/base"));
        let mut l = Limits {
            lines: 10,
            name: "x".into(),
        };
        read_keys(&mut r, prefix, &table, KEYS, &mut l, |_| {
            Key::unknown(KEYS, "known")
        });
        (l, messages(r.into_errors()))
    }

    #[test]
    fn keys_are_read_and_every_problem_is_named() {
        let (l, e) = read("lines = 3\nname = \"y\"", "");
        assert_eq!((l.lines, l.name.as_str(), e.len()), (3, "y", 0));
        let (l, e) = read("lines = 0\nname = 1\ncolour = 2", "t[1]");
        assert_eq!((l.lines, l.name.as_str()), (10, "x"));
        assert_eq!(
            e,
            [
                "f.toml: key 't[1].colour': unknown key (known: lines, name)",
                "f.toml: key 't[1].lines': 0 is out of range (1 to 100)",
                "f.toml: key 't[1].name': must be a string, not integer",
            ]
        );
    }

    #[test]
    fn values() {
        let mut r = Reader::new("f.toml", Path::new("/base"));
        r.at("k".into());
        let v = |s: &str| -> toml::Value {
            parse_table("f", &format!("v = {s}")).unwrap()["v"].clone()
        };
        assert_eq!(r.path(&v("\"a\"")), Some(PathBuf::from("/base/a")));
        assert_eq!(r.secs(&v("5"), 1, 9), Some(Duration::from_secs(5)));
        assert_eq!(r.millis(&v("5"), 0, 9), Some(Duration::from_millis(5)));
        assert_eq!(r.whole::<u16>(&v("7"), 0, 9), Some(7));
        assert_eq!(r.cidrs(&v("\"::1\"")).map(|c| c.len()), Some(1));
        assert_eq!(r.strings(&v("[\"a\"]"), "[\"a\"]"), Some(vec!["a".into()]));
        assert_eq!(r.problems(), 0);
        assert_eq!(r.path(&v("\"\"")), None);
        assert_eq!(r.strings(&v("[1]"), "[\"a\"]"), None);
        assert_eq!(r.cidrs(&v("[\"x\", 1]")), None);
        let mut places = Vec::new();
        r.each_table(&v("[{a = 1}, 2]"), "hint", |_, place, _| {
            places.push(place.to_owned())
        });
        assert_eq!(places, ["k[1]"]);
        assert_eq!(
            messages(r.into_errors()),
            [
                "f.toml: key 'k': must not be empty",
                "f.toml: key 'k': must be an array of strings such as [\"a\"]; it holds integer",
                "f.toml: key 'k': `x` is not an IP address or CIDR network",
                "f.toml: key 'k': must hold strings, not integer",
                "f.toml: key 'k[2]': must be a table",
            ]
        );
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let e = parse_table("f.toml", "a = 1\nb = = 2\n").unwrap_err();
        assert!(e.to_string().starts_with("f.toml: line 2, column"), "{e}");
    }
}
