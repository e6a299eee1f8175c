//! The simulated disk keeps exactly what POSIX promises across a crash.

use std::path::Path;

use super::sim::Crash;
use super::*;

use crate::testing::run_local as run;

#[test]
fn sim_crash_keeps_only_synced_bytes_and_names() {
    run(|| async {
        let disk = Disk::simulated(SimDisk::new());
        let dir = Path::new("/data");
        disk.create_dir_all_durable(dir).await.unwrap();
        let f = disk.create_new(&dir.join("a")).await.unwrap();
        f.write_at(&IoBuf::padded_copy(b"one"), 0).await.unwrap();
        f.fdatasync().await.unwrap();
        disk.sync_dir(dir).await.unwrap();
        f.write_at(&IoBuf::padded_copy(b"two"), 4096).await.unwrap();
        let g = disk.create_new(&dir.join("b")).await.unwrap();
        g.write_at(&IoBuf::padded_copy(b"b"), 0).await.unwrap();
        g.fdatasync().await.unwrap();
        disk.sim().unwrap().crash(Crash::KeepSynced);
        let names = disk.list_dir(dir).unwrap();
        assert_eq!(names, vec![std::ffi::OsString::from("a")]);
        let a = disk.sim().unwrap().read_file(&dir.join("a")).unwrap();
        assert_eq!(a.len(), 4096);
        assert_eq!(&a[..3], b"one");
        assert!(f.fdatasync().await.is_err(), "handles die with the crash");
    });
}
