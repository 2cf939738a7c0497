//! A value one thread replaces whole and others read: readers take an `Arc`
//! of the current value and keep it as long as they need, unaffected by a
//! later replacement.

use std::sync::{Arc, Mutex, MutexGuard};

pub struct Snapshot<T> {
    current: Mutex<Option<Arc<T>>>,
}

impl<T> Snapshot<T> {
    /// None published yet.
    pub const fn empty() -> Snapshot<T> {
        Snapshot {
            current: Mutex::new(None),
        }
    }

    pub fn publish(&self, value: T) {
        *self.lock() = Some(Arc::new(value));
    }

    pub fn clear(&self) {
        *self.lock() = None;
    }

    /// The value last published, if any.
    pub fn get(&self) -> Option<Arc<T>> {
        self.lock().clone()
    }

    /// The value last published, or the default if none was.
    pub fn get_or_default(&self) -> Arc<T>
    where
        T: Default,
    {
        self.lock().get_or_insert_with(Default::default).clone()
    }

    /// A reader that panicked cannot have left the value half-replaced.
    fn lock(&self) -> MutexGuard<'_, Option<Arc<T>>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Default for Snapshot<T> {
    fn default() -> Snapshot<T> {
        Snapshot::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_what_they_took() {
        let snapshot = Snapshot::empty();
        assert!(snapshot.get().is_none());
        assert_eq!(*snapshot.get_or_default(), 0);
        snapshot.publish(1);
        let taken = snapshot.get();
        snapshot.publish(2);
        assert_eq!(taken.as_deref(), Some(&1));
        assert_eq!(snapshot.get().as_deref(), Some(&2));
        snapshot.clear();
        assert!(snapshot.get().is_none());
    }
}
