//! What every layer's service offers, written once: the accessors of its
//! inner service (tower-http's shape).

/// Expands, inside the `impl` block of a service whose inner service is
/// the field `inner` of the type parameter `$S`, to `get_ref`, `get_mut`
/// and `into_inner`.
macro_rules! inner_service_accessors {
    ($S:ident) => {
        /// The inner service.
        pub fn get_ref(&self) -> &$S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut $S {
            &mut self.inner
        }

        /// Unwraps the inner service.
        pub fn into_inner(self) -> $S {
            self.inner
        }
    };
}

pub(crate) use inner_service_accessors;
