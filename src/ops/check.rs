//! `otapub check`: the store against the index. Every pointer, immutable
//! object and asset the index implies must be present and match.

use std::collections::BTreeSet;

use super::{full_view, Context};
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::index::Index;
use crate::tree;

/// Problems found, one line each; empty when the store matches.
/// What `check` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Checked {
    /// Problems, each with how to fix it.
    pub problems: Vec<String>,
    /// Packages `gc --keep` retired (as `pointer version`): their bundles
    /// may be gone, which is no problem.
    pub retired: Vec<String>,
}

/// Checks the store against the index.
pub async fn check(ctx: &Context<'_>) -> Result<Checked> {
    let index = crate::commit::read_index(ctx.store).await?;
    let view = full_view(&index)?;
    let mut problems = Vec::new();
    let rendered = tree::render(&view)?;
    for o in &rendered {
        match ctx.store.get(&o.key).await? {
            None => problems.push(format!("{}: missing (run `otapub regenerate --verify-bytes`)", o.key)),
            Some(got) if got.bytes != o.bytes => problems.push(format!(
                "{}: differs from what the index records (run `otapub regenerate --verify-bytes`)",
                o.key
            )),
            Some(got)
                if (&got.meta.content_type, &got.meta.cache_control)
                    != (&o.meta.content_type, &o.meta.cache_control) =>
            {
                problems.push(format!(
                    "{}: served as {:?} / {:?}, expected {:?} / {:?} (run `otapub regenerate --verify-bytes`)",
                    o.key, got.meta.content_type, got.meta.cache_control, o.meta.content_type, o.meta.cache_control
                ))
            }
            Some(_) => {}
        }
    }
    // Rollout buckets the index does not serve: a device in such a bucket
    // would get what no rollout gives it now.
    let rendered: BTreeSet<&str> = rendered.iter().map(|o| o.key.as_str()).collect();
    for v in view.iter().filter(|v| v.rollout.is_some()) {
        for o in ctx.store.list(&v.pointer.rollout_prefix()).await? {
            if !rendered.contains(o.key.as_str()) {
                problems.push(format!(
                    "{}: a rollout bucket the index does not serve (run `otapub regenerate` to remove it)",
                    o.key
                ));
            }
        }
    }
    // Embedded patch bases: their signed records, as the index holds them.
    let embedded = crate::index::embedded_bases(index.conn())?;
    for e in &embedded {
        let want = super::embedded::embedded_record(e);
        let key = &want.key;
        match ctx.store.get(key).await? {
            None => problems.push(format!("{key}: missing (run `otapub regenerate`)")),
            Some(got) if got.bytes != want.bytes => problems.push(format!(
                "{key}: differs from what the index records (run `otapub regenerate --verify-bytes`)"
            )),
            Some(_) => {}
        }
    }
    problems.extend(check_patches(ctx, &index).await?);
    // A local store served by a web server running as another user: what
    // that user cannot read is answered 403 (one line, however many).
    let unreadable = ctx.store.unreadable_public(false).await?;
    if let Some(first) = unreadable.first() {
        let more = match unreadable.len() - 1 {
            0 => String::new(),
            n => format!(" and {n} more files or directories"),
        };
        problems.push(format!(
            "{first}{more}: not readable by other users, so a web server whose workers run as another user \
             (nginx: www-data or nobody) answers 403 (run `otapub regenerate`, which makes the public side world-readable)"
        ));
    }
    let retired: Vec<String> = view
        .iter()
        .flat_map(|v| v.packages.iter())
        .filter(|p| p.retired.is_some())
        .map(|p| format!("{} {}", p.pointer, p.version))
        .collect();
    let referenced: BTreeSet<Sha256Digest> = view
        .iter()
        .flat_map(|v| v.packages.iter())
        .filter(|p| p.retired.is_none())
        .filter_map(|p| p.bundle())
        .flat_map(|b| std::iter::once(&b.launch).chain(&b.assets).map(|a| a.sha256))
        .chain(embedded.iter().map(|e| e.launch_asset))
        .collect();
    let known = index.assets()?;
    for sha in referenced {
        let key = format!("public/assets/{sha}");
        match ctx.store.get(&key).await? {
            None => problems.push(format!(
                "{key}: missing; copy the export file with this SHA-256 back to it"
            )),
            Some(obj) => {
                let got = Sha256Digest::of(&obj.bytes);
                if got != sha {
                    problems.push(format!(
                        "{key}: content hashes to {got}; copy the export file with this SHA-256 back to it"
                    ));
                } else if let Some((_, ct)) = known.get(&sha) {
                    if &obj.meta.content_type != ct {
                        problems.push(format!("{key}: served as {:?}, expected {ct:?}", obj.meta.content_type));
                    }
                }
            }
        }
    }
    Ok(Checked { problems, retired })
}

/// Every kept patch: present, the recorded bytes, and turning its base's
/// launch asset into exactly the requested one's (as a device applies it).
async fn check_patches(ctx: &Context<'_>, index: &Index) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut base: Option<(Sha256Digest, Option<Vec<u8>>)> = None;
    for row in crate::index::patches(index.conn())? {
        let Some(sha) = row.kept else { continue };
        let key = row.key();
        let Some(obj) = ctx.store.get(&key).await? else {
            problems.push(format!(
                "{key}: missing (run `otapub regenerate`, which makes it again)"
            ));
            continue;
        };
        if Sha256Digest::of(&obj.bytes) != sha {
            problems.push(format!(
                "{key}: differs from the patch the index records (run `otapub regenerate --verify-bytes`, which makes it again)"
            ));
            continue;
        }
        // One base held at a time: memory stays at a few bundles.
        if base.as_ref().is_none_or(|(sha, _)| *sha != row.base) {
            let got = ctx.store.get(&format!("public/assets/{}", row.base)).await?;
            base = Some((row.base, got.map(|o| o.bytes)));
        }
        let Some((_, Some(base))) = &base else {
            // Reported with the assets below.
            continue;
        };
        match crate::patch::apply(base, &obj.bytes) {
            Err(e) => problems.push(format!(
                "{key}: {e} (run `otapub regenerate --verify-bytes`, which makes it again)"
            )),
            Ok(out) if Sha256Digest::of(&out) != row.target => problems.push(format!(
                "{key}: applied to {} it does not give {} (run `otapub regenerate --verify-bytes`)",
                row.base, row.target
            )),
            Ok(_) => {}
        }
    }
    Ok(problems)
}
