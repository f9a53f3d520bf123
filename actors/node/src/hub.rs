//! Per-tenant in-process broadcast of device events for SSE subscribers (being written).
