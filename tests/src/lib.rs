pub mod e2e;
