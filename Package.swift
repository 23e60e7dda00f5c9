// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Folio",
    products: [
        .library(name: "Folio", targets: ["Folio"]),
        .library(name: "FolioConvert", targets: ["FolioConvert"]),
        .library(name: "FolioTokenizers", targets: ["FolioTokenizers"]),
        .library(name: "FolioInference", targets: ["FolioInference"]),
        .executable(name: "folio", targets: ["folio"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        .systemLibrary(
            name: "CXXHash",
            path: "Sources/CXXHash",
            providers: [.apt(["libxxhash-dev"])]
        ),
        .systemLibrary(
            name: "CLZ4",
            path: "Sources/CLZ4",
            providers: [.apt(["liblz4-dev"])]
        ),
        .systemLibrary(
            name: "CZstd",
            path: "Sources/CZstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            path: "Sources/CCurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(name: "CFolioKernels"),
        .target(name: "CFolioMath", dependencies: ["CFolioKernels"]),
        .target(
            name: "Folio",
            dependencies: ["CXXHash", "CLZ4", "CZstd", "CCurl", "CFolioKernels"]
        ),
        .target(name: "FolioConvert", dependencies: ["Folio", "FolioTokenizers", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .target(name: "FolioTokenizers", dependencies: ["Folio"]),
        .target(name: "FolioInference", dependencies: ["Folio", "FolioConvert", "FolioTokenizers", "CFolioMath", "CFolioKernels"]),
        .executableTarget(
            name: "folio",
            dependencies: [
                "Folio", "FolioConvert", "FolioTokenizers", "FolioInference",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/folio"
        ),
        .testTarget(name: "FolioTests", dependencies: ["Folio", "CFolioKernels"]),
        .testTarget(name: "FolioConvertTests", dependencies: ["Folio", "FolioConvert"]),
        .testTarget(name: "FolioInferenceTests", dependencies: ["Folio", "FolioConvert", "FolioTokenizers", "FolioInference", "CFolioMath", "CFolioKernels"]),
        .testTarget(name: "FolioCLITests", dependencies: ["Folio", "FolioConvert", "folio"]),
    ]
)
