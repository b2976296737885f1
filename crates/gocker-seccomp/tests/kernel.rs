//! The crate against the real kernel, without root: a thread of this test process sets
//! no_new_privs, loads a compiled filter on itself (no TSYNC, so the rest of the process stays
//! unfiltered) with a listener, and the main thread supervises it through the notify API.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;

use gocker_seccomp::notify::{string_arg, AddFd, Listener, ProcessTarget, Response};
use gocker_seccomp::{compile, load, Action, LoadFlags, Profile, Rule};
use rustix::io::Errno;

fn profile(rules: Vec<Rule>) -> Profile {
    Profile {
        default_action: Action::Allow,
        architectures: Vec::new(),
        flags: Vec::new(),
        rules,
    }
}

#[test]
fn errno_rule_applies_to_the_loading_thread_only() {
    let bpf = compile(&profile(vec![Rule::new(
        &["getpriority"],
        Action::Errno(libc::EXDEV as u32),
    )]))
    .unwrap();
    let got = std::thread::spawn(move || {
        rustix::thread::set_no_new_privs(true).unwrap();
        assert!(load(&bpf, LoadFlags::default()).unwrap().is_none());
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        assert!(status.contains("Seccomp:\t2"), "{status}");
        rustix::process::getpriority_process(None)
    })
    .join()
    .unwrap();
    assert_eq!(got, Err(Errno::XDEV));
    // The other threads are not filtered.
    assert!(rustix::process::getpriority_process(None).is_ok());
}

#[test]
fn supervisor_receives_reads_responds_continues_and_adds_fds() {
    let bpf = compile(&profile(vec![Rule::new(
        &["mkdirat", "mknodat"],
        Action::Notify,
    )]))
    .unwrap();
    assert!(bpf.listener);
    let (tx, rx) = mpsc::channel::<(OwnedFd, i32)>();
    let (done_tx, done_rx) = mpsc::channel::<Vec<String>>();
    let worker = std::thread::spawn(move || {
        rustix::thread::set_no_new_privs(true).unwrap();
        let flags = LoadFlags {
            tsync: false,
            ..LoadFlags::for_program(&bpf)
        };
        let l = load(&bpf, flags).unwrap().expect("a listener");
        tx.send((l, rustix::thread::gettid().as_raw_nonzero().get()))
            .unwrap();
        let cwd = rustix::fs::CWD;
        let mode = rustix::fs::Mode::from_raw_mode(0o700);
        let mut seen = Vec::new();
        // 1: answered with an errno; 2: answered with success; 3: continued (the kernel runs it).
        seen.push(format!(
            "{:?}",
            rustix::fs::mkdirat(cwd, "/nonexistent-gocker-seccomp/one", mode)
        ));
        seen.push(format!(
            "{:?}",
            rustix::fs::mkdirat(cwd, "/nonexistent-gocker-seccomp/two", mode)
        ));
        seen.push(format!(
            "{:?}",
            rustix::fs::mkdirat(cwd, "/nonexistent-gocker-seccomp/three", mode)
        ));
        // 4: the supervisor installs a descriptor and answers with its number.
        // SAFETY: raw mknodat with a valid C string; the notified call never reaches the kernel's mknod.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_mknodat,
                libc::AT_FDCWD,
                c"/nonexistent-gocker-seccomp/four".as_ptr(),
                0o600,
                0,
            )
        };
        // SAFETY: `fd` is the descriptor the supervisor installed; it stays open until the close below.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd as i32) };
        let st = rustix::fs::fstat(borrowed).map(|s| s.st_rdev);
        // SAFETY: `fd` was installed in this process by the supervisor and is closed once, here.
        unsafe { libc::close(fd as i32) };
        seen.push(format!("fd>2={} rdev={:?}", fd > 2, st));
        done_tx.send(seen).unwrap();
    });

    let (fd, tid) = rx.recv().unwrap();
    let l = Listener::new(fd);
    let mut paths = Vec::new();
    for (i, answer) in [
        Response::Errno(libc::EXDEV),
        Response::Value(0),
        Response::Continue,
    ]
    .into_iter()
    .enumerate()
    {
        let n = l.recv().unwrap();
        assert_eq!(
            n.pid as i32, tid,
            "the notification names the calling thread"
        );
        assert_eq!(n.syscall_name(), "mkdirat");
        assert_eq!(n.arch, gocker_seccomp::notify::native_audit_arch());
        let target = ProcessTarget::open(&l, &n).unwrap();
        paths.push(string_arg(&target, n.args[1], 4096).unwrap().unwrap());
        assert!(l.id_valid(n.id));
        l.respond(n.id, answer).unwrap();
        assert!(
            !l.id_valid(n.id),
            "answered notification {i} is no longer pending"
        );
        // A second answer to the same notification is refused by the kernel (EINPROGRESS while
        // the caller has not yet picked up the first one, ENOENT after).
        let again = l.respond(n.id, Response::Value(0)).unwrap_err().errno();
        assert!(
            again == Some(libc::ENOENT) || again == Some(libc::EINPROGRESS),
            "{again:?}"
        );
    }
    assert_eq!(
        paths,
        [
            "/nonexistent-gocker-seccomp/one",
            "/nonexistent-gocker-seccomp/two",
            "/nonexistent-gocker-seccomp/three"
        ]
    );

    let n = l.recv().unwrap();
    assert_eq!(n.syscall_name(), "mknodat");
    let null = std::fs::File::open("/dev/null").unwrap();
    let installed = l
        .add_fd(
            n.id,
            null.as_fd(),
            AddFd {
                target: None,
                cloexec: true,
                send: true,
            },
        )
        .unwrap();
    assert!(installed > 2);

    let seen = done_rx.recv().unwrap();
    worker.join().unwrap();
    let null_rdev = rustix::fs::stat("/dev/null").unwrap().st_rdev;
    assert_eq!(seen[0], format!("{:?}", Err::<(), _>(Errno::XDEV)));
    assert_eq!(seen[1], format!("{:?}", Ok::<(), Errno>(())));
    assert_eq!(
        seen[2],
        format!("{:?}", Err::<(), _>(Errno::NOENT)),
        "continued: the kernel ran mkdirat"
    );
    assert_eq!(
        seen[3],
        format!("fd>2=true rdev={:?}", Ok::<_, Errno>(null_rdev))
    );
}

#[test]
fn loading_without_no_new_privs_or_privilege_fails_with_a_clear_error() {
    let bpf = compile(&profile(Vec::new())).unwrap();
    let e = std::thread::spawn(move || {
        // Capabilities are per thread: without CAP_SYS_ADMIN in its effective set (root or not)
        // and without no_new_privs, this thread may not install a filter.
        let mut caps = rustix::thread::capabilities(None).unwrap();
        caps.effective
            .remove(rustix::thread::CapabilitySet::SYS_ADMIN);
        rustix::thread::set_capabilities(None, caps).unwrap();
        load(&bpf, LoadFlags::default()).unwrap_err()
    })
    .join()
    .unwrap();
    assert_eq!(e.errno(), Some(libc::EACCES));
    assert!(
        e.to_string().contains("seccomp(SECCOMP_SET_MODE_FILTER)"),
        "{e}"
    );
}
