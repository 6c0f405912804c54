//! From requests to figures, pure over a [`Catalog`] of what the index
//! knows. URLs name pointers and content-addressed objects, never updates:
//!
//! - a **check-in** (`<channel>/<platform>/<runtime>/manifest[.json]`, or a
//!   rollout bucket's object under it) says, through its headers, which
//!   update the device runs (`expo-current-update-id`) and which failed to
//!   launch (`expo-recent-failed-update-ids`): a device counts for the
//!   update its latest check-in of the day reports;
//! - a **download** is a successful (200 or 226) request for a launch asset
//!   (`assets/<sha256>`): the update is the one the request names
//!   (`expo-requested-update-id`), else the package with that launch asset
//!   (the newest one published before the request when several share it);
//!   it was a **patch** when the response said `im: bsdiff`, or — where the
//!   response headers are not logged — when the edge rule gives one (the
//!   request asks for bsdiff and otapub made `patches/<requested>/<current>`);
//!   a request for `patches/<R>/<C>` itself (an origin's log) is a patch
//!   download of R.
//!
//! Other assets (images, fonts) and other paths are not counted.

use std::collections::{BTreeMap, BTreeSet};

use super::failed_ids;
use super::Hit;
use crate::names::PointerId;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// One update as insights count it: the pointer it was served on and its id (lowercase).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UpdateKey {
    /// The pointer.
    pub pointer: PointerId,
    /// The update's manifest id, lowercase.
    pub update_id: String,
}

/// A package whose launch asset a download may be.
#[derive(Debug, Clone)]
pub struct LaunchOf {
    /// Its pointer.
    pub pointer: PointerId,
    /// Its manifest id, lowercase.
    pub update_id: String,
    /// When it was published (ms).
    pub created_ms: i64,
}

/// What the index knows that the logs need.
pub trait Catalog {
    /// The pointer of the package with this manifest id (lowercase).
    fn pointer_of(&self, update_id: &str) -> Option<PointerId>;
    /// The packages whose launch asset has this SHA-256 (hex), and its size.
    fn launch_asset(&self, sha256_hex: &str) -> Option<(u64, Vec<LaunchOf>)>;
    /// A patch otapub made and kept: (patch size, full launch asset size).
    fn patch(&self, requested: &str, base: &str) -> Option<(u64, u64)>;
}

/// Download counters of one update on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Downloads {
    /// Launch-asset downloads that succeeded, patches included.
    pub downloads: u64,
    /// Of those, patches.
    pub patch_downloads: u64,
    /// Bytes sent as patches.
    pub patch_bytes: u64,
    /// What those patch downloads would have sent as full launch assets.
    pub patch_full_bytes: u64,
    /// Bytes sent as full launch assets.
    pub full_bytes: u64,
}

/// A device's latest check-in of a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckIn {
    /// When (ms).
    pub seen_ms: i64,
    /// What it runs.
    pub update: UpdateKey,
}

/// What a set of requests says.
#[derive(Debug, Default)]
pub struct Facts {
    /// Per (day, update): downloads.
    pub downloads: BTreeMap<(i64, UpdateKey), Downloads>,
    /// Per (day, device UUID bytes): the latest check-in.
    pub checkins: BTreeMap<(i64, [u8; 16]), CheckIn>,
    /// (day, device, update): the device reported the update as failed.
    pub failures: BTreeSet<(i64, [u8; 16], UpdateKey)>,
    /// Days some request with headers was logged on: device figures are
    /// known (maybe 0) there, and null elsewhere.
    pub header_days: BTreeSet<i64>,
    /// Requests that counted for something.
    pub used: u64,
}

/// The day (since the epoch, UTC) of a time in ms.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// A UUID in its 8-4-4-4-12 form (either case, spaces around it dropped), as bytes.
fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    crate::names::uuid_bytes(s.trim())
}

fn uuid_lower(s: &str) -> Option<String> {
    uuid_bytes(s).map(|b| uuid::Uuid::from_bytes(b).hyphenated().to_string())
}

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Pointer(PointerId),
    Asset(String),
    Patch(String, String),
}

/// Reads a path from its end, so a CDN's or a bucket's prefix does not matter.
fn target(path: &str) -> Option<Target> {
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let n = seg.len();
    let last = *seg.last()?;
    if n >= 2 && seg[n - 2] == "assets" {
        return last
            .parse::<crate::digest::Sha256Digest>()
            .is_ok()
            .then(|| Target::Asset(last.to_string()));
    }
    if n >= 3 && seg[n - 3] == "patches" {
        return Some(Target::Patch(uuid_lower(seg[n - 2])?, uuid_lower(last)?));
    }
    if last != "manifest" && last != "manifest.json" {
        return None;
    }
    let at =
        if n >= 6 && seg[n - 3] == "rollout" && seg[n - 2].len() == 2 && seg[n - 2].bytes().all(|c| c.is_ascii_digit())
        {
            n - 6
        } else {
            n.checked_sub(4)?
        };
    Some(Target::Pointer(PointerId {
        channel: seg[at].parse().ok()?,
        platform: seg[at + 1].parse().ok()?,
        fingerprint: seg[at + 2].parse().ok()?,
    }))
}

impl Facts {
    /// Adds one request.
    pub fn add(&mut self, hit: &Hit, catalog: &dyn Catalog) {
        let day = day_of(hit.time_ms);
        if hit.headers.is_some() {
            self.header_days.insert(day);
        }
        let used = match target(&hit.path) {
            Some(Target::Pointer(p)) => self.check_in(day, hit, p),
            Some(Target::Asset(hex)) => self.asset(day, hit, &hex, catalog),
            Some(Target::Patch(r, c)) => self.patch_object(day, hit, &r, &c, catalog),
            None => false,
        };
        if used {
            self.used += 1;
        }
    }

    fn check_in(&mut self, day: i64, hit: &Hit, pointer: PointerId) -> bool {
        let Some(h) = &hit.headers else { return false };
        let Some(device) = h.client_id.as_deref().and_then(uuid_bytes) else {
            return false;
        };
        let mut used = false;
        if let Some(current) = h.current.as_deref().and_then(uuid_lower) {
            let update = UpdateKey {
                pointer: pointer.clone(),
                update_id: current,
            };
            let later = self
                .checkins
                .get(&(day, device))
                .is_none_or(|c| hit.time_ms >= c.seen_ms);
            if later {
                self.checkins.insert(
                    (day, device),
                    CheckIn {
                        seen_ms: hit.time_ms,
                        update,
                    },
                );
            }
            used = true;
        }
        // A header a device garbled names nothing.
        for id in h.failed.as_deref().and_then(failed_ids).unwrap_or_default() {
            if let Some(id) = uuid_lower(&id) {
                self.failures.insert((
                    day,
                    device,
                    UpdateKey {
                        pointer: pointer.clone(),
                        update_id: id,
                    },
                ));
                used = true;
            }
        }
        used
    }

    fn asset(&mut self, day: i64, hit: &Hit, hex: &str, catalog: &dyn Catalog) -> bool {
        if hit.status != 200 && hit.status != 226 {
            return false;
        }
        let Some((size, packages)) = catalog.launch_asset(hex) else {
            return false;
        };
        let h = hit.headers.as_ref();
        let requested = h.and_then(|h| h.requested.as_deref()).and_then(uuid_lower);
        let current = h.and_then(|h| h.current.as_deref()).and_then(uuid_lower);
        let named = requested
            .as_ref()
            .and_then(|r| packages.iter().find(|p| &p.update_id == r))
            // iOS leaves the requested id out when it equals the current one.
            .or_else(|| {
                current
                    .as_ref()
                    .and_then(|c| packages.iter().find(|p| &p.update_id == c))
            });
        let by_time = || {
            packages
                .iter()
                .filter(|p| p.created_ms <= hit.time_ms)
                .max_by_key(|p| p.created_ms)
                .or_else(|| packages.iter().max_by_key(|p| p.created_ms))
        };
        let Some(package) = named.or_else(by_time) else {
            return false;
        };
        let key = UpdateKey {
            pointer: package.pointer.clone(),
            update_id: package.update_id.clone(),
        };
        let edge_patch = || {
            let h = h?;
            if !h.a_im.as_deref()?.contains("bsdiff") {
                return None;
            }
            catalog.patch(&package.update_id, current.as_deref()?)
        };
        let patch = match hit.patch_served {
            Some(true) => Some(edge_patch().map_or(hit.bytes.unwrap_or(0), |p| p.0)),
            Some(false) => None,
            None => edge_patch().map(|p| p.0).or((hit.status == 226).then_some(0)),
        };
        let d = self.downloads.entry((day, key)).or_default();
        d.downloads += 1;
        match patch {
            Some(patch_size) => {
                d.patch_downloads += 1;
                d.patch_bytes += hit.bytes.unwrap_or(patch_size);
                d.patch_full_bytes += size;
            }
            None => d.full_bytes += hit.bytes.unwrap_or(size),
        }
        true
    }

    fn patch_object(&mut self, day: i64, hit: &Hit, requested: &str, base: &str, catalog: &dyn Catalog) -> bool {
        if hit.status != 200 && hit.status != 226 {
            return false;
        }
        let (Some(pointer), Some((size, full))) = (catalog.pointer_of(requested), catalog.patch(requested, base))
        else {
            return false;
        };
        let d = self
            .downloads
            .entry((
                day,
                UpdateKey {
                    pointer,
                    update_id: requested.to_string(),
                },
            ))
            .or_default();
        d.downloads += 1;
        d.patch_downloads += 1;
        d.patch_bytes += hit.bytes.unwrap_or(size);
        d.patch_full_bytes += full;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::Headers;

    const R1: &str = "11111111-1111-4111-8111-111111111111";
    const R2: &str = "22222222-2222-4222-8222-222222222222";
    const DEVICE: &str = "5B2B5E4A-3C2D-4E1F-9A8B-7C6D5E4F3A2B";

    fn pointer() -> PointerId {
        PointerId {
            channel: "production".parse().unwrap(),
            platform: "ios".parse().unwrap(),
            fingerprint: "1.0.0".parse().unwrap(),
        }
    }

    /// R1 (published at 1000) and R2 (at 2000) share no launch asset; a
    /// re-stamp of R1 published at 3000 shares R1's; R2 has a patch from R1.
    struct Two;
    impl Catalog for Two {
        fn pointer_of(&self, id: &str) -> Option<PointerId> {
            [R1, R2].contains(&id).then(pointer)
        }
        fn launch_asset(&self, hex: &str) -> Option<(u64, Vec<LaunchOf>)> {
            let of = |id: &str, created_ms| LaunchOf {
                pointer: pointer(),
                update_id: id.to_string(),
                created_ms,
            };
            match hex.as_bytes()[0] {
                b'1' => Some((
                    1000,
                    vec![of(R1, 1000), of("33333333-3333-4333-8333-333333333333", 3000)],
                )),
                b'2' => Some((2000, vec![of(R2, 2000)])),
                _ => None,
            }
        }
        fn patch(&self, requested: &str, base: &str) -> Option<(u64, u64)> {
            (requested == R2 && base == R1).then_some((300, 2000))
        }
    }

    fn hit(time_ms: i64, path: &str, headers: Option<Headers>) -> Hit {
        Hit {
            time_ms,
            path: path.into(),
            status: 200,
            bytes: None,
            headers,
            patch_served: None,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::default();
        for (k, v) in pairs {
            h.set(k, v);
        }
        h
    }

    #[test]
    fn the_latest_check_in_of_the_day_wins_whatever_the_line_order() {
        let mut facts = Facts::default();
        let on = |u: &str| Some(headers(&[("eas-client-id", DEVICE), ("expo-current-update-id", u)]));
        facts.add(&hit(5_000, "/production/ios/1.0.0/manifest", on(R2)), &Two);
        facts.add(&hit(4_000, "/production/ios/1.0.0/manifest", on(R1)), &Two);
        let c = facts.checkins.values().next().unwrap();
        assert_eq!((facts.checkins.len(), c.update.update_id.as_str()), (1, R2));
        // The next day is another day.
        facts.add(&hit(86_400_000 + 1, "/production/ios/1.0.0/manifest", on(R1)), &Two);
        assert_eq!(facts.checkins.len(), 2);
        assert_eq!(facts.header_days.len(), 2);
    }

    #[test]
    fn downloads_are_attributed_by_header_then_by_publish_time_and_patches_by_the_edge_rule() {
        let mut facts = Facts::default();
        let r1_asset = format!("/assets/1{}", "0".repeat(63));
        let r2_asset = format!("/assets/2{}", "0".repeat(63));
        // No headers: the package with that launch asset published last before the request.
        facts.add(&hit(2_500, &r1_asset, None), &Two);
        facts.add(&hit(3_500, &r1_asset, None), &Two);
        // A patch asked for, and otapub made it: the edge served it (no response headers logged).
        let asks = headers(&[
            ("a-im", "bsdiff"),
            ("expo-current-update-id", R1),
            ("expo-requested-update-id", R2),
        ]);
        facts.add(&hit(4_000, &r2_asset, Some(asks)), &Two);
        // A 304, an unknown asset and an image are not downloads.
        let mut not_modified = hit(4_000, &r2_asset, None);
        not_modified.status = 304;
        facts.add(&not_modified, &Two);
        facts.add(&hit(4_000, &format!("/assets/9{}", "0".repeat(63)), None), &Two);
        assert_eq!(facts.used, 3);
        let got: Vec<(String, Downloads)> = facts
            .downloads
            .iter()
            .map(|((_, u), d)| (u.update_id.clone(), *d))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        let of = |id: &str| got.iter().find(|(u, _)| u == id).unwrap().1;
        assert_eq!(of(R1).downloads, 1, "before the re-stamp was published");
        assert_eq!(of("33333333-3333-4333-8333-333333333333").downloads, 1);
        let r2 = of(R2);
        assert_eq!(
            (
                r2.downloads,
                r2.patch_downloads,
                r2.patch_bytes,
                r2.patch_full_bytes,
                r2.full_bytes
            ),
            (1, 1, 300, 2000, 0)
        );
    }

    #[test]
    fn paths_are_read_from_their_end() {
        assert!(matches!(
            target("/production/ios/1.0.0/manifest"),
            Some(Target::Pointer(ref x)) if x.to_string() == "production/ios/1.0.0"
        ));
        assert!(matches!(
            target("prefix/public/production/android/fp-1/rollout/07/manifest.json"),
            Some(Target::Pointer(ref x)) if x.to_string() == "production/android/fp-1"
        ));
        let hex = "ab".repeat(32);
        assert_eq!(target(&format!("/assets/{hex}")), Some(Target::Asset(hex.clone())));
        assert_eq!(
            target(&format!("/assets/{}", "AB".repeat(32))),
            None,
            "assets are lowercase hex"
        );
        assert_eq!(
            target("/patches/0C8E7F1A-0000-4000-8000-000000000001/0c8e7f1a-0000-4000-8000-000000000002"),
            Some(Target::Patch(
                "0c8e7f1a-0000-4000-8000-000000000001".into(),
                "0c8e7f1a-0000-4000-8000-000000000002".into()
            ))
        );
        assert_eq!(target("/favicon.ico"), None);
        assert_eq!(target("/manifest"), None);
        assert_eq!(target("/Bad/ios/1/manifest"), None, "not a channel");
    }
}
