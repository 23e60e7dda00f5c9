extension FileSystem {
    /// Calls `body` with the path of a hidden scratch file beside `destination` (which `body`
    /// may create), and removes it afterwards, on error and on SIGINT/SIGTERM/SIGHUP.
    public static func withScratchFile<R>(near destination: String, _ body: (String) throws -> R) throws -> R {
        let path = Sys.dirname(destination) + "/." + Sys.basename(destination) + ".scratch-\(Sys.processID())-" + Sys.randomSuffix() + ".folio"
        let slot = InterruptCleanup.register(path)
        defer {
            Sys.unlink(path)
            InterruptCleanup.unregister(slot)
        }
        return try body(path)
    }
}
