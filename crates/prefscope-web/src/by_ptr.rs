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

/// A view rebuilt only when its `version` changes. The page re-renders on every input (the dial
/// on each pointer move) and on every batch of steps; charts whose data did not change need not
/// format their polylines again.
#[derive(yew::Properties)]
pub struct MemoProps {
    /// Anything that changes whenever what `view` draws does.
    pub version: u64,
    pub view: Rc<dyn Fn() -> yew::Html>,
}

impl PartialEq for MemoProps {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
    }
}

#[yew::function_component(Memo)]
pub fn memo(props: &MemoProps) -> yew::Html {
    (props.view)()
}

/// A `version` for [`Memo`] from the values its view depends on.
pub fn version(parts: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}
