//! The cheapest filter that does what every apirule-wasm request needs: enter the wasm VM, read
//! `:authority`, `:path` and `authorization`, continue. `make bench` compares apirule-wasm with
//! this to separate the proxy-wasm host cost (VM entry, header copies) from the filter's own work.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(Empty) });
}}

struct Empty;

impl Context for Empty {}

impl HttpContext for Empty {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Read like the real filter does (one host call each); the lengths keep the reads live.
        let mut total = 0usize;
        for name in [":authority", ":path", "authorization"] {
            total += self.get_http_request_header(name).map_or(0, |v| v.len());
        }
        std::hint::black_box(total);
        Action::Continue
    }
}
