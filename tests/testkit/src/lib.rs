//! Helpers shared by drover's integration tests: waiting for a condition with a deadline
//! instead of sleeping a fixed time.

/// Re-exported so the macro works in crates that name tokio differently.
pub use tokio as __tokio;

/// Polls `$cond` (any expression, `.await` allowed) every 25 ms until it is true or
/// `$within` (a `Duration`) has passed; evaluates to whether it became true.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let start = std::time::Instant::now();
/// assert!(drover_testkit::eventually!(Duration::from_secs(1), start.elapsed() > Duration::from_millis(50)));
/// assert!(!drover_testkit::eventually!(Duration::from_millis(60), false));
/// # }
/// ```
#[macro_export]
macro_rules! eventually {
    ($within:expr, $cond:expr) => {{
        let deadline = $crate::__tokio::time::Instant::now() + $within;
        loop {
            if $cond {
                break true;
            }
            if $crate::__tokio::time::Instant::now() >= deadline {
                break false;
            }
            $crate::__tokio::time::sleep(::std::time::Duration::from_millis(25)).await;
        }
    }};
}
