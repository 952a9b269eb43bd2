//! Page selections in cases: `3`, `"0..4"`, `"2..=5"`, `"all"` or `[0, 2, 5]`. Pages are counted in
//! the memory type's own page size (a hugetlb page is a huge page), so one case fits every type.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pages {
    All,
    /// Half-open range `start..end`.
    Range(usize, usize),
    List(Vec<usize>),
}

impl Pages {
    /// The page indices, in order, or an error naming the first index outside `0..count`.
    pub fn resolve(&self, count: usize) -> Result<Vec<usize>, String> {
        let list: Vec<usize> = match self {
            Pages::All => (0..count).collect(),
            Pages::Range(a, b) => (*a..*b).collect(),
            Pages::List(l) => l.clone(),
        };
        if list.is_empty() {
            return Err(format!("page selection `{self}` selects no page"));
        }
        if let Some(bad) = list.iter().find(|&&p| p >= count) {
            return Err(format!(
                "page {bad} is out of range: the case has {count} page{} (0..{count})",
                if count == 1 { "" } else { "s" }
            ));
        }
        Ok(list)
    }

    /// Groups indices into runs of consecutive pages `(first, count)`, for range ioctls.
    pub fn runs(pages: &[usize]) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &p in pages {
            match runs.last_mut() {
                Some((first, n)) if *first + *n == p => *n += 1,
                _ => runs.push((p, 1)),
            }
        }
        runs
    }

    fn parse(s: &str) -> Result<Pages, String> {
        let s = s.trim();
        if s == "all" {
            return Ok(Pages::All);
        }
        let num = |t: &str| -> Result<usize, String> {
            t.trim()
                .parse()
                .map_err(|_| format!("`{t}` is not a page number"))
        };
        if let Some((a, b)) = s.split_once("..=") {
            return Ok(Pages::Range(num(a)?, num(b)? + 1));
        }
        if let Some((a, b)) = s.split_once("..") {
            let (a, b) = (num(a)?, num(b)?);
            if b <= a {
                return Err(format!(
                    "range `{s}` is empty (end must be greater than start)"
                ));
            }
            return Ok(Pages::Range(a, b));
        }
        Ok(Pages::List(vec![num(s)?]))
    }
}

impl fmt::Display for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pages::All => f.write_str("all"),
            Pages::Range(a, b) => write!(f, "{a}..{b}"),
            Pages::List(l) if l.len() == 1 => write!(f, "{}", l[0]),
            Pages::List(l) => {
                let items: Vec<String> = l.iter().map(|p| p.to_string()).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

impl Serialize for Pages {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Pages::List(l) if l.len() == 1 => s.serialize_u64(l[0] as u64),
            Pages::List(l) => l.serialize(s),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Pages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PagesVisitor;
        impl<'de> Visitor<'de> for PagesVisitor {
            type Value = Pages;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a page selection: a page number, \"a..b\", \"a..=b\", \"all\" or a list of page numbers")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Pages, E> {
                Ok(Pages::List(vec![v as usize]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Pages, E> {
                usize::try_from(v)
                    .map(|p| Pages::List(vec![p]))
                    .map_err(|_| E::custom(format!("page number {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Pages, E> {
                Pages::parse(v).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pages, A::Error> {
                let mut list = Vec::new();
                while let Some(p) = seq.next_element::<usize>()? {
                    list.push(p);
                }
                if list.is_empty() {
                    return Err(de::Error::custom("an empty page list selects no page"));
                }
                Ok(Pages::List(list))
            }
        }
        d.deserialize_any(PagesVisitor)
    }
}

impl JsonSchema for Pages {
    fn schema_name() -> Cow<'static, str> {
        "Pages".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Pages, counted in the memory type's page size: a page number, \"a..b\" (end excluded), \"a..=b\", \"all\", or a list of page numbers.",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^(all|[0-9]+|[0-9]+\\.\\.=?[0-9]+)$" },
                { "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 1 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("all", 4, vec![0, 1, 2, 3])]
    #[case("1..3", 4, vec![1, 2])]
    #[case("1..=3", 4, vec![1, 2, 3])]
    #[case("2", 4, vec![2])]
    fn parses_and_resolves(#[case] text: &str, #[case] count: usize, #[case] want: Vec<usize>) {
        assert_eq!(Pages::parse(text).unwrap().resolve(count).unwrap(), want);
    }

    #[rstest]
    #[case("3..1", "is empty")]
    #[case("x", "not a page number")]
    #[case("1..y", "not a page number")]
    fn rejects_bad_text(#[case] text: &str, #[case] msg: &str) {
        assert!(Pages::parse(text).unwrap_err().contains(msg));
    }

    #[test]
    fn out_of_range_names_the_page() {
        let err = Pages::Range(2, 9).resolve(4).unwrap_err();
        assert!(err.contains("page 4 is out of range"), "{err}");
    }

    #[test]
    fn runs_group_consecutive_pages() {
        assert_eq!(
            Pages::runs(&[0, 1, 2, 5, 7, 8]),
            vec![(0, 3), (5, 1), (7, 2)]
        );
    }
}
