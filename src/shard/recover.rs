//! Start-up: bringing a shard back to what was acknowledged before the last stop or crash
//! (its part store, the WALs of shard numbers beyond the core count, then its own WAL). Only
//! the streams the WALs hold become resident; what parts hold is selected through the
//! parts' own postings ([`super::select`]), so a restart does not bring every stream ever
//! written back into memory.

use std::path::PathBuf;
use std::rc::Rc;

use super::{Shard, seal};
use crate::config::Config;
use crate::wal::{Wal, WalOptions};

impl Shard {
    /// The WAL directory of shard `id`.
    pub fn wal_dir(data_dir: &std::path::Path, id: usize) -> PathBuf {
        crate::store::paths::wal_dir(data_dir, id)
    }

    /// Brings the shard back to what was acknowledged before the last stop or crash, before
    /// the server says it is ready:
    /// 1. opens its part store (and, read-only, the stores of shard numbers beyond the core
    ///    count that map to it);
    /// 2. replays the WALs of shard numbers beyond the core count that map to it, seals what
    ///    they held into its own store and deletes them;
    /// 3. replays its own WAL after the store's checkpoint, skipping entries already sealed
    ///    (per-stream watermarks), and opens the WAL for writing.
    pub async fn recover(self: &Rc<Self>, config: &Config) -> Result<(), String> {
        let disk = self.disk.clone();
        let data_dir = &config.data_dir;
        let dir = Shard::wal_dir(data_dir, self.id);
        disk.create_dir_all_durable(&dir)
            .await
            .map_err(|e| format!("creating the WAL directory {}: {e}", dir.display()))?;
        // glommio decides once per executor and device whether polled direct reads work, by
        // reading the first DMA file it opens; make that a file with data in it (in this
        // shard's own directory: the shards start concurrently).
        crate::wal::prime_dma_probe(&disk, &dir)
            .await
            .map_err(|e| e.to_string())?;
        let settings = seal::SealSettings::from_config(config);
        self.seal_settings.set(Some(settings));
        let store =
            crate::store::Store::open(disk.clone(), data_dir, self.id, settings.store, true)
                .await
                .map_err(|e| format!("opening the part store: {e}"))?;
        let store = Rc::new(store);
        *self.store.borrow_mut() = Some(store.clone());

        // Stores and WALs of shard numbers this shard stands in for.
        let foreign = |parent: &str| -> Vec<usize> {
            crate::store::paths::shard_numbers_in(&disk, &data_dir.join(parent))
                .into_iter()
                .filter(|&n| n >= config.cores && n % config.cores == self.id)
                .collect()
        };
        for n in foreign(crate::store::paths::SHARDS_DIR) {
            let s = crate::store::Store::open(disk.clone(), data_dir, n, settings.store, false)
                .await
                .map_err(|e| format!("opening the part store of shard {n}: {e}"))?;
            let s = Rc::new(s);
            self.foreign_stores.borrow_mut().push(s);
        }
        for n in foreign(crate::store::paths::WAL_DIR) {
            self.take_over_wal(n, config).await?;
        }
        let stale: Vec<u32> = store
            .manifest()
            .foreign
            .iter()
            .map(|f| f.0)
            .filter(|&n| !disk.exists(&Shard::wal_dir(data_dir, n as usize)))
            .collect();
        if !stale.is_empty() {
            let _guard = store.lock().await;
            store
                .commit_locked(
                    crate::store::Change {
                        forget_foreign: stale,
                        ..Default::default()
                    },
                    || {},
                )
                .await
                .map_err(|e| e.to_string())?;
        }

        let sealed = store.manifest().clone();
        let first_seq_min = sealed
            .watermarks
            .iter()
            .map(|w| w.1)
            .max()
            .unwrap_or(0)
            .max(sealed.wal_checkpoint)
            + 1;
        let opts = WalOptions {
            segment_bytes_max: config.wal_segment_bytes_max,
            commit_interval: config.wal_commit_interval,
            commit_bytes_max: crate::wal::COMMIT_BYTES_MAX_DEFAULT,
            shard_id: self.id as u32,
            first_seq_min,
        };
        let (wal, report) = Wal::open(&disk, &dir, opts, config.wal_repair, |seq, body| {
            if seq <= sealed.wal_checkpoint {
                self.remember_sealed_record(body);
                return Ok(());
            }
            self.replayed(self.apply(seq, body, Some(&sealed), true))
        })
        .await
        .map_err(|e| e.to_string())?;
        eprintln!(
            "shard {}: recovered {} parts; WAL after checkpoint {}: {report}",
            self.id,
            store.part_count(),
            sealed.wal_checkpoint
        );
        let stats = wal.stats();
        if !stats.writable {
            eprintln!(
                "shard {}: read-only: {}; queries are answered, writes are refused (507) \
                 until space is freed, then resume by themselves",
                self.id,
                stats.no_space.as_deref().unwrap_or("no WAL segment")
            );
        }
        if sealed.wal_checkpoint > 0
            && let Err(e) = wal.remove_segments_through(sealed.wal_checkpoint).await
        {
            eprintln!("shard {}: WAL checkpoint at start: {e}", self.id);
        }
        let me = Rc::downgrade(self);
        wal.set_durable_hook(Box::new(move |through| {
            if let Some(shard) = me.upgrade() {
                shard.on_durable(through);
            }
        }));
        // In the task queue recovery runs in (ingest), beside the WAL's committer.
        glommio::spawn_local(Shard::run_applier(
            Rc::downgrade(self),
            self.apply_wanted.clone(),
        ))
        .detach();
        *self.wal.borrow_mut() = Some(Rc::new(wal));
        Ok(())
    }

    /// Replays the WAL of shard number `n` (beyond the core count) into the heads, seals all of
    /// it into this shard's store, then deletes it. Its records up to what its own store had
    /// sealed, or what an earlier take-over sealed, are skipped.
    async fn take_over_wal(&self, n: usize, config: &Config) -> Result<(), String> {
        let dir = Shard::wal_dir(&config.data_dir, n);
        let own = self.store.borrow().clone().expect("opened first");
        let theirs = self
            .foreign_stores
            .borrow()
            .iter()
            .find(|s| s.dir_shard() as usize == n)
            .map(|s| s.manifest().clone())
            .unwrap_or_default();
        let through = own
            .manifest()
            .foreign_through(n as u32)
            .max(theirs.wal_checkpoint);
        let mut last = 0;
        let report = crate::wal::replay_dir(own.disk(), &dir, config.wal_repair, |seq, body| {
            last = seq;
            if seq <= through {
                self.remember_sealed_record(body);
                return Ok(());
            }
            self.replayed(self.apply(seq, body, Some(&theirs), false))
        })
        .await
        .map_err(|e| e.to_string())?;
        eprintln!(
            "shard {}: replayed the WAL of shard {n} ({report}); sealing it",
            self.id
        );
        self.seal_round(seal::SealMode::Foreign {
            shard: n as u32,
            through: last.max(through),
        })
        .await
        .map_err(|e| format!("sealing the WAL of shard {n}: {e}"))?;
        // Sealed and named by the manifest: the WAL is no longer needed.
        let disk = own.disk().clone();
        for name in disk.list_dir(&dir).map_err(|e| e.to_string())? {
            let path = dir.join(name);
            disk.remove(&path)
                .await
                .map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
        disk.remove_dir(&dir)
            .map_err(|e| format!("removing {}: {e}", dir.display()))?;
        if let Some(parent) = dir.parent() {
            disk.sync_dir(parent)
                .await
                .map_err(|e| format!("syncing {}: {e}", parent.display()))?;
        }
        Ok(())
    }

    /// Recomputes every resident stream's sealed time range from the seal rounds that are
    /// left, after retention dropped parts: a stream whose data is all gone stops being
    /// selected (by `/labels`, `/series` and queries); what parts hold is selected through
    /// them ([`super::select`]). No yield, so no query sees it half done.
    pub(super) fn reindex_sealed(&self) {
        let mut streams = self.streams.borrow_mut();
        streams.clear_sealed();
        for set in self.sealing.borrow().iter() {
            for h in &set.heads {
                if let Some(idx) = streams.index_of(h.id) {
                    streams.note_sealed(idx, h.min_ts(), h.max_ts());
                }
            }
        }
    }
}
