// swift-tools-version:6.0
// Fuzz targets for every parser, built with libFuzzer and AddressSanitizer:
//   bash Tools/fuzz/run.sh [SECONDS_PER_TARGET]
import PackageDescription

let targets = ["FuzzFolioHeader", "FuzzSafetensors", "FuzzGGUF", "FuzzPickle", "FuzzNumPy", "FuzzZip", "FuzzTokenizer", "FuzzCompressed"]

let package = Package(
    name: "FolioFuzz",
    dependencies: [.package(name: "Folio", path: "../..")],
    targets: [.target(name: "FuzzSupport", path: "Sources/FuzzSupport")] + targets.map { name in
        .executableTarget(
            name: name,
            dependencies: [
                "FuzzSupport",
                .product(name: "Folio", package: "Folio"),
                .product(name: "FolioConvert", package: "Folio"),
                .product(name: "FolioInference", package: "Folio"),
                .product(name: "FolioTokenizers", package: "Folio"),
            ],
            path: "Sources/\(name)"
        )
    }
)
