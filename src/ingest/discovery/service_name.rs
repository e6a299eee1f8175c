//! `service_name` as Loki 3's push parser gives it (`ParseLokiRequest` in
//! `pkg/loghttp/push/push.go`): a stream without a `service_name` label takes the value of
//! the first label of the `discover_service_name` list that it has with a non-empty value,
//! or `unknown_service` when it has none of them. An empty list turns this off, and a stream
//! that has its own `service_name` keeps it.
//!
//! The label is added before the stream's labels are checked, as in Loki, so it counts
//! toward `max_label_names_per_series`.

/// The label Loki derives.
pub const SERVICE_NAME: &str = "service_name";
/// Its value when none of the listed labels is there (Loki's `ServiceUnknown`).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The `service_name` to add to a stream whose label values `get` looks up (an empty value
/// counts as absent for the listed labels, as in Loki), or `None` when the stream has one
/// already or discovery is off (`from` is empty). Borrows the value from
/// the label it comes from: no allocation.
pub fn derive<'a>(from: &[String], get: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    // Present at all, even empty, as Loki's `Has`: adding a second one would be a
    // duplicate label name.
    if from.is_empty() || get(SERVICE_NAME).is_some() {
        return None;
    }
    let found = from
        .iter()
        .find_map(|name| get(name).filter(|v| !v.is_empty()));
    Some(found.unwrap_or(UNKNOWN_SERVICE))
}

/// Adds the derived `service_name` to label pairs sorted by name (borrowed, as the syslog
/// listener builds them), keeping them sorted. Nothing changes when the pairs have a
/// `service_name` or discovery is off.
pub fn add_sorted<'a, A: smallvec::Array<Item = (&'static str, &'a str)>>(
    from: &[String],
    pairs: &mut smallvec::SmallVec<A>,
) {
    let get = |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let Some(value) = derive(from, get) else {
        return;
    };
    let at = pairs.partition_point(|(n, _)| *n < SERVICE_NAME);
    pairs.insert(at, (SERVICE_NAME, value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::discovery::DISCOVER_SERVICE_NAME_DEFAULT;

    fn defaults() -> Vec<String> {
        DISCOVER_SERVICE_NAME_DEFAULT
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn derive_from(pairs: &[(&str, &str)]) -> Option<String> {
        let from = defaults();
        derive(&from, |name| {
            pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        })
        .map(str::to_string)
    }

    #[test]
    fn the_first_listed_label_present_wins() {
        assert_eq!(
            derive_from(&[("job", "j"), ("app", "a")]).as_deref(),
            Some("a")
        );
        assert_eq!(
            derive_from(&[("job", "j"), ("container", "c")]).as_deref(),
            Some("c")
        );
        assert_eq!(
            derive_from(&[("k8s_job_name", "kj"), ("job", "j")]).as_deref(),
            Some("j")
        );
        assert_eq!(
            derive_from(&[("service", "s"), ("app", "a")]).as_deref(),
            Some("s")
        );
        // An empty value is an absent label, as in Loki.
        assert_eq!(
            derive_from(&[("app", ""), ("job", "j")]).as_deref(),
            Some("j")
        );
    }

    #[test]
    fn none_listed_is_unknown_service_and_an_own_service_name_stays() {
        assert_eq!(
            derive_from(&[("host", "h"), ("env", "prod")]).as_deref(),
            Some(UNKNOWN_SERVICE)
        );
        assert_eq!(derive_from(&[("service_name", "mine"), ("app", "a")]), None);
        assert_eq!(derive_from(&[]).as_deref(), Some(UNKNOWN_SERVICE));
    }

    #[test]
    fn an_empty_list_turns_it_off() {
        assert_eq!(derive(&[], |_| Some("x")), None);
        assert_eq!(derive(&[], |_| None), None);
    }

    #[test]
    fn sorted_pairs_stay_sorted() {
        let from = defaults();
        let mut pairs: smallvec::SmallVec<[(&'static str, &str); 5]> = smallvec::smallvec![
            ("app", "sshd"),
            ("facility", "auth"),
            ("host", "h1"),
            ("level", "info"),
        ];
        add_sorted(&from, &mut pairs);
        assert_eq!(
            pairs.as_slice(),
            &[
                ("app", "sshd"),
                ("facility", "auth"),
                ("host", "h1"),
                ("level", "info"),
                ("service_name", "sshd"),
            ]
        );
        assert!(!pairs.spilled(), "five syslog labels fit inline");
        let mut pairs: smallvec::SmallVec<[(&'static str, &str); 5]> =
            smallvec::smallvec![("host", "h1"), ("zone", "z")];
        add_sorted(&from, &mut pairs);
        assert_eq!(
            pairs.as_slice(),
            &[
                ("host", "h1"),
                ("service_name", UNKNOWN_SERVICE),
                ("zone", "z")
            ]
        );
        let mut off = pairs.clone();
        add_sorted(&[], &mut off);
        assert_eq!(off, pairs);
    }
}
