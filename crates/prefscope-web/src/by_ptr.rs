//! Shared data as a component property.

use std::rc::Rc;

/// Equal when it is the same allocation: a view re-renders (and redraws its canvas) only when new
/// data arrives, without comparing large vectors element by element.
pub struct ByPtr<T>(pub Rc<T>);

impl<T> Clone for ByPtr<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> PartialEq for ByPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}
