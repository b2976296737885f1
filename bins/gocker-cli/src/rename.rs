//! `gocker rename CONTAINER NEW_NAME`, as docker's: running or stopped containers; the new name
//! is checked as `run --name` checks it and must be free; the old one is free afterwards.

use gocker_runtime::state::StateStore;
use gocker_runtime::RuntimeError;

use crate::cli::RenameArgs;
use crate::failure::{report, usage, Failure};

fn rename_inner(a: &RenameArgs) -> Result<(), Failure> {
    if a.container.is_empty() || a.new_name.is_empty() {
        return Err(usage("Neither old nor new names may be empty"));
    }
    if !crate::run::valid_name(&a.new_name) {
        return Err(usage(format!(
            "Invalid container name ({}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (at most 128 characters)",
            a.new_name
        )));
    }
    let store = StateStore::open(StateStore::default_root())?;
    store.collect_stale();
    let st = store.lookup(&a.container)?;
    if st.name == a.new_name {
        return Err(usage(
            "Renaming a container with the same name as its current name",
        ));
    }
    store
        .rename(&st.id, &a.new_name)
        .map_err(|e| match e {
            RuntimeError::NameInUse(n) => {
                let holder = store
                    .lookup(&n)
                    .map(|h| format!(" by container \"{}\"", h.id))
                    .unwrap_or_default();
                usage(format!(
                    "Conflict. The container name \"/{n}\" is already in use{holder}. You have to remove (or rename) that container to be able to reuse that name."
                ))
            }
            e => e.into(),
        })
}

pub(crate) fn rename(a: RenameArgs) -> i32 {
    match rename_inner(&a) {
        Ok(()) => 0,
        Err(f) => report(f),
    }
}
